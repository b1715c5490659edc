"""`--store URL` on the command line: parse it, get the secrets, mount for the job.

Where `--store` takes a directory it also takes smb://, nfs:// or ssh:// URLs. Passwords
are asked with getpass (not echoed) when a terminal is there, or read from
`--credentials FILE`; an unknown SSH host key is shown with its fingerprint and trusted
only when the technician types yes. Nothing secret reaches argv, the log or the output.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from recovery.errors import LoginError, StoreError, UsageError
from recovery.events import EventSink, Notice
from recovery.model.netstore import Credentials, Secret, is_url, parse_url, read_credentials
from recovery.store.remote import HostKeyPrompt, mounted_store
from recovery.sys.network import (
    pick_link,
    set_static,
    static_address,
    update_resolv_conf,
    use_dhcp,
    wired_links,
)
from recovery.ui.render import print_json


def add_store_argument(parser: argparse.ArgumentParser, required: bool = True,
                       purpose: str = "") -> None:
    """--store as text (a Path would fold a URL's "//") and --credentials for a URL."""
    parser.add_argument("--store", required=required, metavar="STORE",
                        help=f"{purpose}image store: a directory, or smb://[DOMAIN;]USER@"
                        "SERVER/SHARE/PATH, nfs://SERVER/EXPORT/PATH, ssh://USER@SERVER[:PORT]"
                        "/PATH")
    parser.add_argument("--credentials", type=Path, metavar="FILE",
                        help="for a store URL: file of username=, password=, domain=, "
                        "identity_file= (SSH key), known_hosts= lines")


@contextmanager
def store_for_job(args: argparse.Namespace, events: EventSink) -> Iterator[None]:
    """Turn args.store into the local directory the job uses (mounting a URL meanwhile)."""
    value = getattr(args, "store", None)
    if not isinstance(value, str):
        yield
        return
    if not is_url(value):
        args.store = Path(value)
        yield
        return
    url = parse_url(value)
    credentials = read_credentials(args.credentials) if args.credentials else Credentials()
    interactive = sys.stdin.isatty() and not getattr(args, "json", False)
    if url.scheme == "smb" and credentials.password is None and interactive:
        credentials = replace(credentials, password=_ask_password(url.user, url.server))
    ask: HostKeyPrompt | None = _ask_host_key if interactive else None
    with ExitStack() as stack:
        try:
            store = stack.enter_context(mounted_store(url, credentials, job=args.command,
                                                      ask_host_key=ask))
        except LoginError:
            if not (url.scheme == "ssh" and interactive and credentials.password is None):
                raise
            # No key was accepted: log in with a password instead.
            credentials = replace(credentials, password=_ask_password(url.user, url.server))
            store = stack.enter_context(mounted_store(url, credentials, job=args.command,
                                                      ask_host_key=ask))
        events(Notice(f"Store {url.display()} mounted ({store.detail}) on "
                      f"{store.mountpoint}."))
        if args.command != "capture" and not store.path.is_dir():
            raise StoreError(f"The store {url.display()} does not exist: {url.server} has "
                             f"no folder {'/'.join(url.path)}.",
                             "Check the path in the URL; a store is created by its first "
                             "capture.")
        args.store = store.path
        yield


def _ask_password(user: str, server: str) -> Secret:
    return Secret(getpass.getpass(f"Password for {user} on {server}: "))


def _ask_host_key(server: str, fingerprint: str) -> bool:
    print(f"The SSH server {server} is not known yet. Its host key is\n  {fingerprint}\n"
          "Compare it with the key shown on the server (ssh-keygen -lf "
          "/etc/ssh/ssh_host_ed25519_key.pub).", file=sys.stderr)
    answer = input("Trust this key and connect? Type yes or no: ")
    return answer.strip().lower() == "yes"


STATIC_COMMAND = "recovery network --static ADDRESS/PREFIX"


def register_network(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    network = commands.add_parser(
        "network", help="wired Ethernet ports: cable, address; type a static address",
        description="Without options: each wired port, its cable and address. --static "
        "gives a port a fixed address where no DHCP server answers; --dhcp goes back.")
    network.add_argument("--static", metavar="ADDRESS/PREFIX",
                         help="e.g. 192.168.1.50/24: a fixed address instead of DHCP")
    network.add_argument("--gateway", default="", metavar="IP", help="with --static")
    network.add_argument("--dns", default="", metavar="IP[,IP]",
                         help="with --static: name servers, for a NAS named by name")
    network.add_argument("--dhcp", action="store_true", help="back to DHCP on the port")
    network.add_argument("--interface", default="", metavar="NAME",
                         help="the port (default: the only one, or the only one with a cable)")
    network.add_argument("--json", action="store_true", help="print one JSON document")
    network.set_defaults(handler=cmd_network)


def cmd_network(args: argparse.Namespace, events: EventSink) -> int:
    links = wired_links()
    document: dict[str, object] = {}
    if args.static and args.dhcp:
        raise UsageError("--static and --dhcp cannot be used together.",
                         "Give one: --static ADDRESS/PREFIX, or --dhcp.")
    if args.static:
        link = pick_link(links, args.interface)
        config = static_address(link.name, args.static, args.gateway, args.dns)
        set_static(config)
        document["static"] = config.to_dict()
        events(Notice(f"{link.name}: static address {config.address} set."))
    elif args.dhcp:
        link = pick_link(links, args.interface)
        use_dhcp(link.name)
        document["dhcp"] = link.name
        events(Notice(f"{link.name}: back to DHCP."))
    elif args.gateway or args.dns:
        raise UsageError("--gateway and --dns go with --static.",
                         "Add --static ADDRESS/PREFIX.")
    if args.static or args.dhcp:
        links = wired_links()
    servers = update_resolv_conf()
    advice = [f"{text} ({STATIC_COMMAND} --interface {link.name})" for link in links
              if (text := link.advice())]
    if args.json:
        print_json({**document, "links": [link.to_dict() for link in links],
                    "name_servers": servers, "advice": advice})
    else:
        print("\n".join(link.describe() for link in links) or "No Ethernet port found.")
        print("\n".join(advice), end="\n" if advice else "")
    return 0
