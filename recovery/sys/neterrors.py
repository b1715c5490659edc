"""What a failed mount of a network share means, from the tool's message, as an error that
names the server and says what to do. Shared by recovery.sys.cifs, .nfs and .sshfs."""

from __future__ import annotations

from recovery.errors import LoginError, NetworkError, StoreError

_NO_NETWORK = ("network is unreachable", "no route to host", "host is down",
               "error(112)", "error(113)", "error(101)", "timed out", "timeout")
_NOT_FOUND = ("could not resolve", "name or service not known", "failed to resolve",
              "temporary failure in name resolution", "unknown host")
_REFUSED = ("connection refused", "error(111)", "connection reset", "closed by remote host")
_LOGIN = ("permission denied (", "error(13)", "authentication failed", "logon failure",
          "too many authentication failures")
_MISSING = ("no such file or directory", "error(2)", "access denied by server",
            "not a directory", "error(20)", "bad network name")


def classify(message: str, server: str, port: int, what: str) -> StoreError:
    """`what`: "SMB share images", "NFS export /srv", ... (named in the message)."""
    text = message.lower()
    tail = " ".join(message.split())[-300:]
    rules: list[tuple[tuple[str, ...], type[StoreError], str, str]] = [
        (_NOT_FOUND, NetworkError, f"The server name {server} was not found.",
         "Check the spelling, or use the server's IP address; check that the network cable "
         "is plugged in and the PC got an address."),
        (_NO_NETWORK, NetworkError, f"The server {server} cannot be reached ({tail}).",
         "Check the network cable and that this PC got an address (no DHCP answer?), and "
         "that the server is switched on."),
        (_LOGIN, LoginError, f"The server {server} refused the login to {what}.",
         "Check the user name, domain and password (or the key); they are case-sensitive. "
         "If they are right, the server does not let this user use it (its share "
         "permissions, or the folder's on the server)."),
        (_REFUSED, NetworkError, f"The server {server} refused the connection on port {port}.",
         "Check that the sharing service runs on the server and that the port in the URL "
         "is right."),
        (_MISSING, StoreError, f"The server {server} has no {what}, or does not share it "
         f"with this PC ({tail}).", "Check the share or folder name in the URL (names are "
         "listed on the server), and that this PC is allowed to mount it."),
    ]
    for keys, kind, title, action in rules:
        if any(key in text for key in keys):
            return kind(title, action)
    return NetworkError(f"Mounting {what} from {server} failed: {tail}",
                        "Check the URL, the network and the server; see the log for the "
                        "full output.")
