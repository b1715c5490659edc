"""Restore points: list, inspect, diff and roll back Windows registry hives offline."""

import logging

# regipy logs every odd value it meets; a damaged hive would flood the log.
logging.getLogger("regipy").setLevel(logging.CRITICAL)
