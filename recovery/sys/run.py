"""The one way this program starts external tools: logged, checked, with a clear error."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence

from recovery.errors import ToolError

log = logging.getLogger(__name__)

# Debian package that ships each tool, so a missing tool names what to install.
PACKAGE_OF = {
    "sgdisk": "gdisk", "sfdisk": "fdisk", "partx": "util-linux", "losetup": "util-linux",
    "blockdev": "util-linux", "mkntfs": "ntfs-3g", "ntfs-3g": "ntfs-3g", "ntfsclone": "ntfs-3g",
    "ntfsfix": "ntfs-3g", "ntfsinfo": "ntfs-3g", "mkfs.fat": "dosfstools",
    "fsck.fat": "dosfstools", "mcopy": "mtools", "mmd": "mtools", "mdir": "mtools",
    "partclone.ntfs": "partclone", "udevadm": "udev", "qemu-img": "qemu-utils",
    "fusermount": "fuse3", "systemctl": "systemd", "vshadowinfo": "libvshadow-utils",
    "partclone.fat": "partclone", "mdel": "mtools", "mtype": "mtools", "umount": "mount",
    "sshfs": "sshfs", "ssh-keyscan": "openssh-client", "ssh-keygen": "openssh-client",
    "mount.cifs": "cifs-utils", "mount.nfs": "nfs-common", "mount": "mount", "ip": "iproute2",
    "fusermount3": "fuse3", "ntfsresize": "ntfs-3g", "mount.exfat-fuse": "exfat-fuse",
    "smartctl": "smartmontools",
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = PACKAGE_OF.get(name, name)
        raise ToolError(f"The program '{name}' is not installed.",
                        f"Install the Debian package '{package}' (apt-get install {package}).")
    return path


def run(argv: Sequence[str], *, input_bytes: bytes | None = None, check: bool = True,
        timeout: float | None = 600, quiet: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run a tool, log its command line and output, raise ToolError when it fails.
    `quiet`: a look repeated every few seconds (the TUI's network line), logged only with
    --verbose."""
    require_tool(argv[0])
    line = shlex.join(argv)
    # Command lines and stderr at INFO: the TUI's action log shows them; stdout (often a
    # whole JSON dump) only with --verbose.
    log.log(logging.DEBUG if quiet else logging.INFO, "run: %s", line)
    try:
        result = subprocess.run(list(argv), input=input_bytes, capture_output=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"'{argv[0]}' did not finish within {timeout:.0f} s.",
                        "The device may be failing or hung; check its cabling and retry.") from exc
    if result.stdout:
        log.debug("stdout: %s", result.stdout.decode(errors="replace").strip())
    if result.stderr:
        log.info("stderr of %s: %s", argv[0], result.stderr.decode(errors="replace").strip())
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise ToolError(f"'{line}' failed (exit {result.returncode}): {message[-400:]}",
                        "See the log for the full output.")
    return result


def run_text(argv: Sequence[str], **kwargs: object) -> str:
    return run(argv, **kwargs).stdout.decode(errors="replace")  # type: ignore[arg-type]


def run_streaming(argv: Sequence[str], consume: Callable[[bytes], None], *,
                  chunk_size: int = 1 << 20) -> str:
    """Run a tool whose stdout is too big to hold (an image stream); feed it to `consume`.

    stderr goes to a temporary file so a chatty tool cannot block on a full pipe; it is
    returned as text. A failing tool raises ToolError like `run`.
    """
    require_tool(argv[0])
    line = shlex.join(argv)
    log.info("run (streaming): %s", line)
    with tempfile.TemporaryFile() as errors:
        with subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=errors) as process:
            assert process.stdout is not None
            while block := process.stdout.read(chunk_size):
                consume(block)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if stderr.strip():
        log.info("stderr of %s: %s", argv[0], stderr.strip())
    if process.returncode != 0:
        raise ToolError(f"'{line}' failed (exit {process.returncode}): {stderr.strip()[-400:]}",
                        "See the log for the full output.")
    return stderr


def run_leaving_daemon(argv: Sequence[str], *, input_bytes: bytes | None = None,
                       timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run a tool that leaves a process behind (sshfs leaves ssh running): its output goes
    to a temporary file, since the daemon would hold a pipe open and `run` would wait for
    it forever. Not checked: the caller reads the exit status and the output."""
    require_tool(argv[0])
    log.debug("run (leaves a daemon): %s", shlex.join(argv))
    with tempfile.TemporaryFile() as output:
        try:
            result = subprocess.run(list(argv), input=input_bytes, stdout=output,
                                    stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"'{argv[0]}' did not finish within {timeout:.0f} s.",
                            "The server may not be answering; check the network and "
                            "retry.") from exc
        output.seek(0)
        result.stdout = output.read()
    log.debug("output: %s", result.stdout.decode(errors="replace").strip())
    return result
