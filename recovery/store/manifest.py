"""manifest.yaml: the image manifest as human-readable YAML with its own BLAKE3.

`manifest_blake3` is the BLAKE3 of the document's canonical content (sorted-key compact
JSON of everything but that field), so the hash does not depend on YAML formatting but any
edit to a value is caught. It is the last key in the file: a truncated file loses it and
is reported as truncated, never loaded half.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

import blake3
import yaml

from recovery.errors import ImageDamagedError, StoreError
from recovery.model.manifest import MANIFEST_FORMAT, READABLE_FORMATS, ImageManifest
from recovery.units import human_size

# Byte counts a technician wants to read at a glance get a "<field>_human" neighbour.
_HUMAN_FIELDS = frozenset({"size", "disk_size", "used_bytes", "stored_bytes", "bytes_read",
                           "bytes_stored", "chunk_size", "index_size"})
_HEADER = ("# recovery image manifest (see `format`). Do not edit: manifest_blake3 covers every\n"
           "# value, and a changed manifest is refused as damaged.\n")
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def to_plain(value: object) -> Any:
    """Dataclasses -> dicts in field order (plus *_human sizes), tuples -> lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for item in dataclasses.fields(value):
            field_value = getattr(value, item.name)
            out[item.name] = to_plain(field_value)
            if item.name in _HUMAN_FIELDS and isinstance(field_value, int):
                out[f"{item.name}_human"] = human_size(field_value)
        return out
    if isinstance(value, tuple | list):
        return [to_plain(item) for item in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


def content_hash(document: dict[str, Any]) -> str:
    body = {key: value for key, value in document.items() if key != "manifest_blake3"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest: str = blake3.blake3(canonical.encode()).hexdigest()
    return digest


def seal(manifest: ImageManifest) -> ImageManifest:
    """The manifest as it will load back (floats rounded), `manifest_blake3` filled in."""
    document = to_plain(dataclasses.replace(manifest, manifest_blake3=""))
    canonical: ImageManifest = from_plain(ImageManifest, document)
    return dataclasses.replace(canonical, manifest_blake3=content_hash(document))


def dump(manifest: ImageManifest) -> bytes:
    """YAML text of a sealed manifest; `manifest_blake3` comes last."""
    sealed = seal(manifest)
    document = to_plain(sealed)
    document["manifest_blake3"] = document.pop("manifest_blake3")
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)
    return (_HEADER + text).encode()


def load(data: bytes, image: str) -> ImageManifest:
    """Parse and verify manifest.yaml of `image`; any damage -> ImageDamagedError."""
    try:
        document = yaml.load(data.decode("utf-8"), Loader=_Loader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _damaged(image, f"it is not valid YAML ({_first_line(exc)}), probably "
                              "truncated") from exc
    if not isinstance(document, dict):
        raise _damaged(image, "it is empty or truncated")
    fmt = document.get("format")
    if isinstance(fmt, int) and fmt > MANIFEST_FORMAT:
        raise StoreError(f"Image {image} was made by a newer version of recovery (manifest "
                         f"format {fmt}, this version reads {MANIFEST_FORMAT}).",
                         "Use the recovery version that captured it, or a newer one.")
    recorded = document.get("manifest_blake3")
    if not isinstance(recorded, str) or not recorded:
        raise _damaged(image, "it is truncated (its manifest_blake3 line is missing)")
    if content_hash(document) != recorded:
        raise ImageDamagedError(
            f"The manifest of image {image} was changed or damaged (hash mismatch).",
            "Do not edit manifests. Capture the disk again, or restore the manifest from a "
            "copy of the store.")
    try:
        manifest: ImageManifest = from_plain(ImageManifest, document)
    except (TypeError, ValueError, KeyError) as exc:
        raise _damaged(image, f"a value is missing or wrong: {exc}") from exc
    if manifest.format not in READABLE_FORMATS:
        raise _damaged(image, f"unknown format {manifest.format!r}")
    return manifest


def from_plain(cls: type[Any], document: object) -> Any:
    """Build dataclass `cls` from a dict, checking every value against its type hint."""
    if not isinstance(document, dict):
        raise TypeError(f"{cls.__name__}: expected a mapping, got {type(document).__name__}")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name in document:
            values[item.name] = _convert(hints[item.name], document[item.name], item.name)
        elif (item.default is dataclasses.MISSING
              and item.default_factory is dataclasses.MISSING):
            raise KeyError(f"{cls.__name__}.{item.name}")
    return cls(**values)


def _convert(hint: Any, value: object, name: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_plain(hint, value)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list):
            raise TypeError(f"{name}: expected a list")
        return tuple(_convert(get_args(hint)[0], item, name) for item in value)
    if origin is Literal:
        if value not in get_args(hint):
            raise ValueError(f"{name}: {value!r} is not one of {get_args(hint)}")
        return value
    if origin in (types.UnionType, typing.Union):
        for option in get_args(hint):
            try:
                return _convert(option, value, name)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"{name}: {value!r} has the wrong type")
    return _scalar(hint, value, name)


def _scalar(hint: Any, value: object, name: str) -> Any:
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if hint is type(None) and value is None:
        return None
    if not isinstance(value, hint):
        raise TypeError(f"{name}: expected {hint.__name__}, got {value!r}")
    return value


def _damaged(image: str, why: str) -> ImageDamagedError:
    return ImageDamagedError(
        f"The manifest of image {image} is damaged: {why}.",
        "The image cannot be trusted. Capture the disk again, or restore the image folder "
        "from a copy of the store.")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
