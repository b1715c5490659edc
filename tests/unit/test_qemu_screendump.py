"""QEMU's screendump (PPM) as the PNG the README shows: checked by decoding it back."""

from __future__ import annotations

import struct
import zlib

import pytest

from qemu.vm import QemuError, ppm_to_png


def test_ppm_becomes_a_png_with_the_same_pixels() -> None:
    pixels = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])  # 2x2: red, green / blue, grey
    png = ppm_to_png(b"P6\n2 2\n255\n" + pixels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, offset = {}, 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        data = png[offset + 8:offset + 8 + length]
        crc = struct.unpack(">I", png[offset + 8 + length:offset + 12 + length])[0]
        assert crc == zlib.crc32(kind + data)
        chunks[kind] = data
        offset += 12 + length
    assert struct.unpack(">IIBBBBB", chunks[b"IHDR"]) == (2, 2, 8, 2, 0, 0, 0)
    rows = zlib.decompress(chunks[b"IDAT"])
    assert rows == b"\x00" + pixels[:6] + b"\x00" + pixels[6:]
    assert b"IEND" in chunks


def test_not_a_ppm_is_refused() -> None:
    with pytest.raises(QemuError):
        ppm_to_png(b"P3\n2 2\n255\n0 0 0")
