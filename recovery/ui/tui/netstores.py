"""Stores on network shares the technician opened by URL in the TUI, mounted until it ends.

The CLI mounts a share for one job; the TUI keeps it mounted from "Open store" until the
TUI closes, so the image list, a capture, a restore and a verify all use the one mount.
The password typed for it lives only in the `Credentials` handed to the mount (recovery.sys
.cifs / .sshfs write it to a private file or pipe and forget it): never in the log.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from recovery.engine.storescan import StoreLocation, is_store
from recovery.errors import Hint, StoreError
from recovery.model.netstore import Credentials, StoreURL
from recovery.store.objects import ChunkStore
from recovery.store.remote import HostKeyPrompt, mounted_store


@dataclass
class RemoteStores:
    mounts: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    names: dict[Path, str] = field(default_factory=dict)  # store path -> URL as typed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, url: StoreURL, credentials: Credentials,
             ask_host_key: HostKeyPrompt | None, create: bool = False) -> Path:
        """Mount the share and check a store is there (`create`: make one in the URL's
        folder, which may not exist yet); returns its local path. A folder that is missing
        or empty raises StoreError with Hint.NEW_STORE: the TUI offers to create it."""
        for path, name in self.names.items():
            if name == url.display():
                return path  # opened already
        with contextlib.ExitStack() as attempt:
            store = attempt.enter_context(mounted_store(url, credentials, job="session",
                                                        ask_host_key=ask_host_key))
            if create:
                ChunkStore.open(store.path, create=True)
            elif _missing_or_empty(store.path):
                raise StoreError(f"There is no image store at {url.display()} yet: "
                                 f"{url.server} has no store in {'/'.join(url.path)}.",
                                 "Create a new store there, or check the path in the URL.",
                                 hint=Hint.NEW_STORE)
            elif not is_store(store.path):
                # Not offered as a new store: it would mix with what is there.
                raise StoreError(f"{url.display()} is a folder with other files in it, not "
                                 "an image store.", "Check the path in the URL; a new store "
                                 "goes into a new or empty folder.")
            with self.lock:
                self.mounts.push(attempt.pop_all())
                self.names[store.path] = url.display()
            return store.path

    def named(self, stores: list[StoreLocation]) -> list[StoreLocation]:
        """`stores` with each network store named by its URL instead of a disk."""
        return [StoreLocation(s.path, s.free_bytes, self.names[s.path])
                if s.path in self.names else s for s in stores]

    def close(self) -> None:
        with self.lock:
            self.names.clear()
            self.mounts.close()


def _missing_or_empty(path: Path) -> bool:
    """A folder a new store may go into without mixing with anything already there."""
    try:
        return not path.exists() or (path.is_dir() and not any(path.iterdir()))
    except OSError:
        return False  # the share's own error comes from opening it
