"""Model store clients: the same layout in a local folder and in S3."""

from app.store.artifacts import ArtifactStore
from app.store.objects import LocalObjectStore, ObjectStore, S3ObjectStore, open_object_store

__all__ = ["ArtifactStore", "LocalObjectStore", "ObjectStore", "S3ObjectStore", "open_object_store"]
