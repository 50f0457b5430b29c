"""A job's scratch store: where a fleet worker puts the outputs of a `--no-commit` run, so
that they reach the submitter without entering the fleet's store (whose objects others'
entries may name, so none can be removed). It sits under the store's prefix, beside DVC's
`files/md5/` layout, and the submitter removes it once the outputs are home."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCRATCH = ".executor-scratch"


def scratch_url(store_url: str, job_id: str) -> str:
    """The scratch store of job `job_id` of the store `store_url` (a URL or a folder)."""
    parts = urlsplit(store_url)
    if parts.scheme in ("s3", "file"):
        path = f"{parts.path.rstrip('/')}/{SCRATCH}/{job_id}"
        return urlunsplit(parts._replace(path=path))
    return f"{store_url.rstrip('/')}/{SCRATCH}/{job_id}"
