"""Which objects an S3 prefix holds, asked with as few requests as the keys' spread allows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from executor.store.s3client import MISSING, error_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SPARSE = 10  # a listed page that answers fewer wanted keys than this: HEAD the rest


def head(client: S3Client, bucket: str, key: str) -> bool:
    """Whether the key exists (one HEAD)."""
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in MISSING:
            return False
        raise
    return True


def scan_present(client: S3Client, bucket: str, prefix: str, keys: list[str]) -> list[str]:
    """Which of the sorted `keys` exist. A listing from the first key on answers every
    wanted key up to the last one it returns; the next starts at the next wanted key, so an
    empty or dense range costs a request per page at most. Where the store holds many
    objects between the wanted ones (pages answer few), the rest are asked by HEAD."""
    found: list[str] = []
    i = 0
    while i < len(keys):
        page = client.list_objects_v2(
            Bucket=bucket, Prefix=prefix, StartAfter=keys[i][:-1], MaxKeys=1000
        )
        listed = [o["Key"] for o in page.get("Contents", [])]
        if not listed:
            break
        names, last, start = set(listed), listed[-1], i
        while i < len(keys) and keys[i] <= last:
            if keys[i] in names:
                found.append(keys[i])
            i += 1
        if not page.get("IsTruncated"):
            break
        if i - start < SPARSE:
            found.extend(k for k in keys[i:] if head(client, bucket, k))
            break
    return found
