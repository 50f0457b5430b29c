"""Cost of the store API by what changed: `python -m bench.store_probe [--endpoint URL] [-n N]`.

In one process against moto's server (started on a free port) or any S3 endpoint (MinIO: pass
--endpoint and AWS_* keys), prints seconds and S3 requests for:
  - `exists_many` over N objects that are all present (one listing pass, no HEAD per object);
  - pushing a directory of N small files after k of them changed (k = 0, 1, 10, 100): the
    cost follows k, not N.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from executor.hashing.digests import file_md5
from executor.hashing.objects import DirEntry, manifest_bytes
from executor.store.hints import DirHints
from executor.store.local import LocalStore
from executor.store.s3 import S3Store
from executor.store.s3client import make_client
from executor.store.tracked import Tracked
from executor.store.transfer import push


def _counted(store: S3Store) -> Counter[str]:
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    store.client.meta.events.register("before-call.s3", count)
    return calls


def _write_dir(cache: LocalStore, folder: Path, n: int, changed: int, seed: str) -> Tracked:
    """A directory output of `n` files (the first `changed` with new content), in the cache."""
    entries = []
    for i in range(n):
        path = folder / f"f{i:05d}"
        if i < changed or not path.exists():
            path.write_bytes(f"{seed if i < changed else ''} file {i}\n".encode() * 40)
        md5 = file_md5(path)
        cache.put_file(md5, path)
        entries.append(DirEntry(path.name, md5, path.stat().st_size, False))
    manifest = manifest_bytes(entries)
    oid = hashlib.md5(manifest).hexdigest() + ".dir"
    cache.put_bytes(oid, manifest)
    return Tracked("data", oid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=None, help="S3 endpoint (default: start moto)")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    server = None
    if args.endpoint is None:
        from tests.fixtures.s3_server import FAKE_KEYS, MotoServer

        os.environ.update({**FAKE_KEYS, "AWS_DEFAULT_REGION": "us-east-1"})
        server = MotoServer(shutil.which("moto_server") or "moto_server")
        server.start()
        args.endpoint = server.endpoint
    work = Path(tempfile.mkdtemp(prefix="store-probe-"))
    try:
        client = make_client(args.endpoint, region="us-east-1", workers=args.workers)
        bucket = f"probe-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        store = S3Store(client, bucket, "p", workers=args.workers)
        calls = _counted(store)
        cache = LocalStore(work / "cache")
        folder = work / "data"
        folder.mkdir()
        out = _write_dir(cache, folder, args.n, 0, "")
        started = time.perf_counter()
        hints = DirHints(work / "hints.json")  # what `executor push` keeps in .dvc/tmp
        push(cache, store, [out], jobs=args.workers, hints=hints)
        took = time.perf_counter() - started
        print(f"first push of {args.n:,} files: {took:.2f} s, {dict(calls)}")
        md5s = [file_md5(p) for p in sorted(folder.iterdir())]
        calls.clear()
        started = time.perf_counter()
        found = store.exists_many(md5s)
        took = time.perf_counter() - started
        print(f"exists_many, {len(found):,} of {len(md5s):,} present: {took:.2f} s, {dict(calls)}")
        for k in (0, 1, 10, 100):
            out = _write_dir(cache, folder, args.n, k, f"v{k}")
            calls.clear()
            started = time.perf_counter()
            report = push(cache, store, [out], jobs=args.workers, hints=hints)
            took = time.perf_counter() - started
            moved = f"{report.moved} moved, {dict(calls)}"
            print(f"push after {k} of {args.n:,} changed: {took:.2f} s, {moved}")
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if server is not None:
            server.kill()


if __name__ == "__main__":
    main()
