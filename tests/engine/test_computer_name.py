"""The Windows computer name in manifests and `recovery images --computer` (issue #13)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recovery.registry.identity import hive_computer_name
from recovery.store import manifest as codec
from recovery.store.objects import ChunkStore
from tests.conftest import unpack_hive

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("hive", "name"), [("SYSTEM.xz", "WKS-WIN732BITA"),
                                            ("SYSTEM_WIN_10_1709.xz", "DESKTOP-2KGM189"),
                                            ("SYSTEM_2.xz", "SENSEI"),
                                            # damaged elsewhere, the name is intact
                                            ("corrupted_system_hive.xz", "GINEVRA"),
                                            ("SAM.xz", "")])
def test_computer_name_from_real_system_hives(hive: str, name: str, tmp_path: Path) -> None:
    assert hive_computer_name(unpack_hive(hive, tmp_path)) == name


def images(store: Path, *extra: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "recovery", "images", "--store", str(store),
                           *extra, "--json"], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    document: dict[str, object] = json.loads(done.stdout)
    return document


def test_capture_records_computer_model_and_serial(small_store: Path) -> None:
    manifest, _ = ChunkStore.open(small_store).load_image("base")
    assert manifest.format == 2
    assert manifest.computer == "WKS-WIN732BITA"  # the demo disk carries fixtures' SYSTEM
    text = (small_store / "images" / "base" / "manifest.yaml").read_text()
    assert "computer: WKS-WIN732BITA" in text
    listed = images(small_store)["images"]
    assert isinstance(listed, list) and listed[0]["computer"] == "WKS-WIN732BITA"
    assert listed[0]["source"]["model"] == manifest.source.model
    assert listed[0]["source"]["serial"] == manifest.source.serial


@pytest.mark.parametrize(("pattern", "found"), [("wks-win732bita", ["base"]),
                                                ("WKS-*", ["base"]),
                                                ("DESKTOP-2KGM189", []), ("WKS", [])])
def test_images_filtered_by_computer(small_store: Path, pattern: str, found: list[str]
                                     ) -> None:
    listed = images(small_store, "--computer", pattern)["images"]
    assert isinstance(listed, list) and [i["name"] for i in listed] == found


def test_format_1_manifest_without_computer_still_loads(small_store: Path, tmp_path: Path
                                                        ) -> None:
    """An image captured by an older version: format 1, no `computer` key (format 2)
    and no `table_copy` / `disk_unreadable` keys (format 3)."""
    manifest, _ = ChunkStore.open(small_store).load_image("base")
    document = codec.to_plain(dataclasses.replace(manifest, manifest_blake3=""))
    for newer in ("computer", "table_copy", "disk_unreadable"):
        del document[newer]
    document["format"] = 1
    document["manifest_blake3"] = codec.content_hash(document)
    old = codec.load(yaml.safe_dump(document, sort_keys=False).encode(), "old")
    assert old.format == 1 and old.computer == ""
    assert old.table_copy == "" and old.disk_unreadable == () and old.unreadable_bytes == 0
    assert old.source == manifest.source and old.partitions == manifest.partitions


def test_tui_image_list_names_the_computer_model_and_serial(small_store: Path) -> None:
    """The TUI's restore, verify and explore wizards list images with the computer name
    (how a customer's PC is found on a shared store), the details add model and serial."""
    from recovery.ui.tui.widgets.images import describe_image, image_option
    info = ChunkStore.open(small_store).list_images()[0]
    assert info.manifest is not None
    source = info.manifest.source
    assert f"WKS-WIN732BITA  {source.model}" in str(image_option(info).prompt)
    assert (f"from computer WKS-WIN732BITA, disk {source.model} (serial {source.serial}"
            in describe_image(info))
