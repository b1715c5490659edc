"""Names a destination cannot store are renamed, never dropped, and never collide."""

from __future__ import annotations

from recovery.fs.names import FolderNames, storable


def test_windows_rules() -> None:
    assert storable('a:b*c?"d<e>f|g\\h.txt', True) == "a_b_c__d_e_f_g_h.txt"
    assert storable("trailing dot. ", True) == "trailing dot"
    assert storable("CON.txt", True) == "_CON.txt"
    assert storable("Ünïcödé 日本語 📷.txt", True) == "Ünïcödé 日本語 📷.txt"
    assert storable("a:b.txt", False) == "a:b.txt"  # ext4 keeps it


def test_over_long_names_keep_their_extension() -> None:
    name = "é" * 200 + ".docx"  # 405 bytes of UTF-8, 205 UTF-16 units
    assert storable(name, True) == name
    short = storable(name, False)
    assert short.endswith(".docx") and len(short.encode()) <= 255
    assert storable("日" * 300, True) == "日" * 255


def test_collisions_get_a_number() -> None:
    names = FolderNames(windows=True)
    assert [names.claim(n) for n in ("Same.txt", "same.txt", "SAME.TXT", "a:b", "a_b")] == [
        "Same.txt", "same (2).txt", "SAME (3).TXT", "a_b", "a_b (2)"]
    posix = FolderNames(windows=False)
    assert [posix.claim(n) for n in ("Same.txt", "same.txt")] == ["Same.txt", "same.txt"]
