"""Hash one path with executor.hashing in a fresh process, as `md5sum` and `dvc add` run:

    python -m bench.hash_cli PATH [--root REPO] [--state DB]

Prints JSON: the hash, files read and bytes read (0 files read = served from the state).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from executor.hashing.hasher import Hasher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args()
    with Hasher(args.state, root=args.root) as hasher:
        info = hasher.hash_path(args.path)
    print(
        json.dumps(
            {"md5": info.md5, "files_read": hasher.files_read, "bytes_read": hasher.bytes_read}
        )
    )


if __name__ == "__main__":
    main()
