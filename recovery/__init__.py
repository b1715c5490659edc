"""recovery: capture, restore and verify Windows disks; roll back registry hives offline."""

__version__ = "0.1.0"
