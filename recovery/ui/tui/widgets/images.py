"""How an image in a store is shown: one option line, and a details block."""

from __future__ import annotations

from recovery.store.images import ImageInfo
from recovery.ui.tui.widgets.plain import PlainOption
from recovery.units import human_size


def source_id(info: ImageInfo) -> str:
    return info.manifest.source.stable_id if info.manifest is not None else ""


def image_option(info: ImageInfo) -> PlainOption:
    """Complete images can be chosen; incomplete and damaged ones are shown, greyed out."""
    created = info.created[:16].replace("T", " ")
    if info.manifest is None:
        why = info.problem or "capture was interrupted"
        return PlainOption(f"{info.name}  {created}  [{info.state}: {why}]", id=info.name,
                      disabled=True)
    source = info.manifest.source
    used = sum(p.used_bytes for p in info.manifest.partitions if p.captured)
    # The check's outcome before the model: on 80 columns the end of the line may wrap.
    # A rescue image is complete but not whole: say so where it is chosen.
    unread = info.manifest.unreadable_bytes
    holes = f"  [{human_size(unread)} unreadable]" if unread else ""
    # On a shop's shared store the Windows computer name is how a customer's PC is found.
    computer = f"{info.computer}  " if info.computer else ""
    return PlainOption(f"{info.name}  {created}  [{verification_tag(info)}]{holes}  "
                       f"{computer}{source.model or source.node}  {human_size(used)} used",
                       id=info.name, disabled=not info.complete)


def verification_tag(info: ImageInfo) -> str:
    """Whether the last full check of the image passed, in a word or two."""
    if info.verified is None:
        return "not verified"
    return "verified" if info.verified.ok else "check FAILED"


def verification_line(info: ImageInfo) -> str:
    if info.verified is None:
        return "Never verified: run Verify (key v on the home screen) to check every chunk."
    check = info.verified
    line = (f"Last check: {check.describe()} UTC, {check.chunks_checked} chunks "
            f"({human_size(check.bytes_checked)}), recovery {check.tool_version}")
    if not check.ok:
        line += ". Do not restore it; capture the disk again."
    return line


def describe_image(info: ImageInfo) -> str:
    if info.manifest is None:
        return f"{info.name}: {info.state}. {info.problem}".strip()
    manifest = info.manifest
    source = manifest.source
    computer = f"computer {info.computer}, disk " if info.computer else ""
    lines = [f"Taken {info.created} from {computer}{source.model} "
             f"(serial {source.serial or '-'}, "
             f"{source.bus}, {human_size(source.size)}), {manifest.table.scheme.upper()}",
             verification_line(info)]
    for part in manifest.partitions:
        state = "captured" if part.captured else "not captured"
        lines.append(f"  {part.number}: {part.role:<8} {part.fs_type:<6} {part.label[:16]:<16} "
                     f"{human_size(part.size):>9} ({human_size(part.used_bytes)} used, {state})")
        lines += [f"     warning: {w}" for w in part.warnings]
    return "\n".join(lines)
