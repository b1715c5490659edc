"""hivex (Debian python3-hivex): the registry hive writer (regipy and libregf only read).

Used for the BCD store, which is a registry hive: Objects\\{id}\\Elements\\{type}\\Element.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from recovery.errors import HiveError, ToolError

REG_BINARY = 3


def _open(path: Path, write: bool) -> Any:  # hivex ships no type hints
    try:
        import hivex  # Debian's python3-hivex; no pip package exists
    except ImportError as exc:
        raise ToolError("The hivex Python bindings are not installed.",
                        "Install the Debian package 'python3-hivex'.") from exc
    try:
        return hivex.Hivex(str(path), write=write)
    except RuntimeError as exc:
        raise HiveError(f"The registry hive {path} cannot be opened: {exc}",
                        "The file is damaged; repair the boot files with Windows' "
                        "'bcdboot' from its recovery environment.") from exc


def rewrite_bcd_elements(path: Path, edit: Callable[[int, bytes], bytes | None]) -> int:
    """Call `edit(element_type, data)` for every binary BCD element; a returned value
    replaces the element. Commits the hive when anything changed; returns how many did."""
    h = _open(path, write=True)
    objects = h.node_get_child(h.root(), "Objects")
    if not objects:
        raise HiveError(f"{path} is not a BCD store (no Objects key).",
                        "Check the file; rebuild it with 'bcdboot' if it is damaged.")
    changed = 0
    for obj in h.node_children(objects):
        elements = h.node_get_child(obj, "Elements")
        for element in h.node_children(elements) if elements else []:
            value = h.node_get_value(element, "Element")
            if not value or h.value_type(value)[0] != REG_BINARY:
                continue
            new = edit(int(h.node_name(element), 16), h.value_value(value)[1])
            if new is not None:
                h.node_set_value(element, {"key": "Element", "t": REG_BINARY, "value": new})
                changed += 1
    if changed:
        h.commit(None)
    return changed

