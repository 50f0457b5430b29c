"""The server's ceiling: plain boto3 with a thread pool, in its own process like the CLIs.

    python -m bench.raw_s3 push|pull ENDPOINT BUCKET LISTFILE [--threads 16]

LISTFILE is JSON [[local path, key, size], ...]. One PUT or GET per object; objects over 8 MiB
go through boto3's managed transfer (multipart or ranged, with the same threads).
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from bench.s3server import make_client

MULTIPART = 8 * 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("push", "pull"))
    parser.add_argument("endpoint")
    parser.add_argument("bucket")
    parser.add_argument("listfile", type=Path)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    items: list[tuple[str, str, int]] = [
        (str(p), str(k), int(n)) for p, k, n in json.loads(args.listfile.read_text())
    ]
    client = make_client(args.endpoint, pool=args.threads)
    transfer = TransferConfig(multipart_threshold=MULTIPART, max_concurrency=args.threads)

    def push(item: tuple[str, str, int]) -> None:
        path, key, size = item
        if size > MULTIPART:
            client.upload_file(path, args.bucket, key, Config=transfer)
        else:
            with open(path, "rb") as f:
                client.put_object(Bucket=args.bucket, Key=key, Body=f.read())

    def pull(item: tuple[str, str, int]) -> None:
        path, key, size = item
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if size > MULTIPART:
            client.download_file(args.bucket, key, path, Config=transfer)
            return
        body = client.get_object(Bucket=args.bucket, Key=key)["Body"].read()
        with open(path, "wb") as f:
            f.write(body)

    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(push if args.action == "push" else pull, items))


if __name__ == "__main__":
    main()
