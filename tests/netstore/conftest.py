from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import small_disk, small_store  # noqa: F401
from tests.netstore.servers import SshServer, make_ssh_server, served


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[SshServer]:
    with served(make_ssh_server(tmp_path / "sshd")) as server:
        yield server
