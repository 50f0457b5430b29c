"""Content-addressed object stores in DVC's layout: a local folder or an S3 bucket."""

from executor.store.base import ObjectStore, RunFile, object_key, run_key

__all__ = ["ObjectStore", "RunFile", "object_key", "run_key"]
