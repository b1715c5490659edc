"""Read-only questions a technician asks before a rollback: which restore points exist,
what a point holds and how healthy it is, and how its hives differ from the current ones.
Each call finds the volume, works in its own staging directory and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recovery.errors import HiveError
from recovery.registry.diff import HiveDiff, diff_hives
from recovery.registry.hives import (
    USER_PREFIX,
    HiveCheck,
    SystemHealth,
    normal_hive_name,
    system_health,
)
from recovery.registry.points import PointListing, RestorePoint, list_points
from recovery.registry.rollback import export_current, staging_dir
from recovery.registry.volume import WindowsVolume, locate_volume, open_volume


@dataclass
class PointsReport:
    volume: WindowsVolume
    listing: PointListing

    def to_dict(self) -> dict[str, object]:
        return {"volume": self.volume.to_dict(), **self.listing.to_dict()}


@dataclass
class PointReport:
    volume: WindowsVolume
    point: RestorePoint
    current: dict[str, HiveCheck]
    health: SystemHealth | None
    diffs: dict[str, HiveDiff] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"volume": self.volume.to_dict(), "point": self.point.to_dict(),
                "current": {n: c.to_dict() for n, c in self.current.items()},
                "current_system": self.health.to_dict() if self.health else None,
                "diff": {n: {"counts": d.counts, "services_added": d.services_added,
                             "services_removed": d.services_removed, "problems": d.problems}
                         for n, d in self.diffs.items()}}


def restore_points(volume_path: Path, partition: int | None = None,
                   user_hives: bool = False) -> PointsReport:
    volume = locate_volume(volume_path, partition)
    with staging_dir() as staging, open_volume(volume) as opened:
        return PointsReport(volume, list_points(opened, staging, user_hives))


def show_point(volume_path: Path, point_id: str, partition: int | None = None,
               with_diff: bool = True, user_hives: bool = False) -> PointReport:
    volume = locate_volume(volume_path, partition)
    with staging_dir() as staging:
        with open_volume(volume) as opened:
            point = list_points(opened, staging / "points", user_hives).find(point_id)
            current = export_current(opened, staging / "current", user_hives)
        health = system_health(staging / "current" / "SYSTEM") if "SYSTEM" in current else None
        report = PointReport(volume, point, current, health)
        if with_diff:
            for name, check in point.hives.items():
                if name in current and check.usable:
                    report.diffs[name] = diff_hives(staging / "current" / name,
                                                    staging / "points" / point.id / name, name)
        return report


def diff_point(volume_path: Path, point_id: str, hive: str, key: str | None = None,
               partition: int | None = None) -> HiveDiff:
    volume = locate_volume(volume_path, partition)
    name = normal_hive_name(hive)
    users = name.startswith(USER_PREFIX)
    with staging_dir() as staging:
        with open_volume(volume) as opened:
            point = list_points(opened, staging / "points", users).find(point_id)
            current = export_current(opened, staging / "current", users)
        if name not in point.hives:
            raise HiveError(f"Restore point {point_id} has no {name} hive.",
                            f"Choose from: {', '.join(point.hives) or 'none'}.")
        if name not in current:
            raise HiveError(f"{volume.describe()} has no current {name} hive to compare with.",
                            "Every key of the point's hive would be new; see 'show'.")
        if point.hives[name].status == "corrupt":
            raise HiveError(f"The {name} hive of restore point {point_id} is corrupt: "
                            f"{point.hives[name].problem}.", "Choose another restore point.")
        return diff_hives(staging / "current" / name, staging / "points" / point.id / name,
                          name, key)
