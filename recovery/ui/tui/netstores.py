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
from recovery.errors import StoreError
from recovery.model.netstore import Credentials, StoreURL
from recovery.store.objects import ChunkStore
from recovery.store.remote import HostKeyPrompt, mounted_store


@dataclass
class RemoteStores:
    mounts: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    names: dict[Path, str] = field(default_factory=dict)  # store path -> URL as typed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, url: StoreURL, credentials: Credentials,
             ask_host_key: HostKeyPrompt | None) -> Path:
        """Mount the share and check a store is there; returns its local path."""
        for path, name in self.names.items():
            if name == url.display():
                return path  # opened already
        with contextlib.ExitStack() as attempt:
            store = attempt.enter_context(mounted_store(url, credentials, job="session",
                                                        ask_host_key=ask_host_key))
            if not store.path.is_dir():
                raise StoreError(f"The store {url.display()} does not exist: {url.server} "
                                 f"has no folder {'/'.join(url.path)}.",
                                 "Check the path in the URL. A new store on a share is "
                                 "made by a first capture from the command line "
                                 "(recovery capture --store URL).")
            if not is_store(store.path):
                ChunkStore.open(store.path)  # raises the store's own explanation
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
