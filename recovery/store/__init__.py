"""The image store: content-addressed chunks, manifests, chunk indexes, image lifecycle."""

from recovery.store.images import ImageInfo, ImageWriter, default_image_name
from recovery.store.index import ChunkRef, ImageIndex, PartitionIndex
from recovery.store.objects import ChunkStore

__all__ = ["ChunkRef", "ChunkStore", "ImageIndex", "ImageInfo", "ImageWriter",
           "PartitionIndex", "default_image_name"]
