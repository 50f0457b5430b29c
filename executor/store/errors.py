"""Store errors beyond executor/errors.py's StoreError and CorruptObject.

StoreError (executor.errors)
├── CorruptObject (executor.errors)  content does not hash to its name
├── ObjectMissing                    the store does not have an object
├── StoreAccessDenied                403, bad or missing credentials (final)
├── StoreNotFound                    the bucket or folder does not exist (final)
├── StoreUnreachable                 the endpoint did not answer, after retries
└── TransferIncomplete               push/pull moved what it could; some objects failed
"""

from __future__ import annotations

from executor.errors import StoreError


class ObjectMissing(StoreError):
    """The store does not hold an object that was asked for."""

    def __init__(self, oid: str, where: str) -> None:
        super().__init__(f"object {oid} is missing from {where}")
        self.oid = oid
        self.where = where


class StoreAccessDenied(StoreError):
    """The store refused the request (HTTP 403, bad or missing credentials)."""


class StoreNotFound(StoreError):
    """The bucket (or the folder) the store URL names does not exist."""


class StoreUnreachable(StoreError):
    """The store's endpoint did not answer, even after retries."""


class TransferIncomplete(StoreError):
    """A push or pull finished, but some objects could not be moved (each with its reason)."""

    def __init__(self, action: str, failed: dict[str, str], kept: list[str] | None = None) -> None:
        first = next(iter(failed.values()), "")
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        also = ""
        if kept:
            shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
            also = (
                f"; also kept {len(kept)} changed file(s) that are in no cache ({shown}): "
                "--force discards them"
            )
        super().__init__(f"{action}: {len(failed)} object(s) failed: {first}{more}{also}")
        self.action = action
        self.failed = failed
        self.kept = kept or []
