"""Push and pull against moto's S3 server on 127.0.0.1: `executor push/pull` against
`dvc push/pull` and raw boto3 with a thread pool (the server's ceiling), each a fresh process;
and the nothing-to-move case on the many-file directory. Requests are counted at the server."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from bench.config import Config
from bench.inputs import Inputs
from bench.measure import Stats, alternate
from bench.results import Row, Target
from bench.s3repo import Dataset, S3Repo
from bench.s3server import MotoServer
from bench.tools import Tools

CEILING = Target("≥ 90% of raw boto3's throughput (the server's ceiling)", "ratio", 1 / 0.9)
DVC = Target("never slower than dvc push/pull", "ratio", 1.0)
NOTHING = Target("≤ 1/5 of dvc's time with nothing to move", "ratio", 1 / 5)
NO_UPLOAD = Target("second push of unchanged data uploads no object", "count", key="PUT")
TOOLS = ("executor", "dvc", "raw")


def _requests(counts: Counter[str], objects: int) -> str:
    shown = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"
    return f"{shown} for {objects} objects"


def file_creation_us(folder: Path, files: int = 1000) -> float:
    """Kernel time to create one small file in `folder`'s filesystem, in µs. A pull writes
    two per object in DVC's layout (cache and workspace), raw boto3 one: where inodes are
    expensive that alone separates them."""
    probe = folder / "file-creation-probe"
    shutil.rmtree(probe, ignore_errors=True)
    probe.mkdir(parents=True)
    try:
        before = os.times()
        for i in range(files):
            os.close(os.open(probe / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        after = os.times()
    finally:
        shutil.rmtree(probe)
    return (after.system - before.system) / files * 1e6


def moved(config: Config, s3: S3Repo, data: Dataset) -> list[Row]:
    """Push, then pull into a fresh clone, each tool against its own bucket."""
    server, buckets = s3.server, {tool: "" for tool in TOOLS}

    def push(tool: str) -> float:
        if buckets[tool]:
            server.drop_bucket(buckets[tool])
        buckets[tool] = server.new_bucket()
        return s3.push(tool, data, buckets[tool])

    pushed = alternate({t: lambda t=t: push(t) for t in TOOLS}, config.slow_rounds, config.warmup)
    push_requests = dict(s3.requests)
    pulled = alternate(
        {t: lambda t=t: s3.pull(t, data, buckets[t]) for t in TOOLS},
        config.slow_rounds,
        config.warmup,
    )
    pull_requests = dict(s3.requests)
    n = len(data.objects)
    rows = []
    creation = (
        f"; creating a file here costs {file_creation_us(s3.repo.parent):.0f} µs of kernel time"
    )
    measured = (("push", pushed, push_requests), ("pull", pulled, pull_requests))
    for action, stats, requests in measured:
        note = f"requests: executor {_requests(requests['executor'], n)}"
        if action == "pull":
            note += creation
        per_object = requests["executor"]["PUT" if action == "push" else "GET"] / n
        for peer, target in (("raw", CEILING), ("dvc", DVC)):
            raw = f"raw boto3, {config.raw_threads} threads"
            peer_name = raw if peer == "raw" else f"dvc {action}"
            rows.append(
                Row(
                    "transfer",
                    f"{action} {data.label}",
                    peer_name,
                    stats["executor"],
                    stats[peer],
                    target=target,
                    extra={f"{action}_requests_per_object": per_object},
                    note=f"{note}; {peer} {_requests(requests[peer], n)}",
                )
            )
    for action in ("push", "pull"):
        missed = [r for r in rows if r.case.startswith(action) and r.met is False]
        if missed and config.profile_misses:
            bucket = server.new_bucket() if action == "push" else buckets["executor"]
            missed[0].profile = s3.profile(action, data, bucket, clone=action == "pull")
            if action == "push":
                server.drop_bucket(bucket)
    for bucket in buckets.values():
        server.drop_bucket(bucket)
    return rows


def nothing_to_move(config: Config, s3: S3Repo, data: Dataset) -> list[Row]:
    """Every object already in the bucket: executor and DVC check the same bucket and prefix."""
    server = s3.server
    bucket = server.new_bucket()
    s3.push("executor", data, bucket)  # seed (same layout as DVC's)
    s3.use_remote(s3.repo, bucket)
    n = len(data.objects)
    rows = []
    for action in ("push", "pull"):
        stats: dict[str, Stats] = alternate(
            {
                tool: lambda t=tool, a=action: s3.move(t, a, data, bucket, s3.repo)
                for tool in ("executor", "dvc")
            },
            config.rounds,
            config.warmup,
        )
        counts = s3.requests["executor"]
        rows.append(
            Row(
                "transfer",
                f"{action}, nothing to move ({n:,} objects present)",
                f"dvc {action}",
                stats["executor"],
                stats["dvc"],
                target=NOTHING,
                note=f"requests: executor {_requests(counts, n)}; "
                f"dvc {_requests(s3.requests['dvc'], n)}",
                extra={
                    "LIST": float(counts["LIST"]),
                    "HEAD": float(counts["HEAD"]),
                    "PUT": float(counts["PUT"]),
                },
            )
        )
    for row, action in zip(rows, ("push", "pull"), strict=True):
        if config.profile_misses and row.met is False:
            row.profile = s3.profile(action, data, bucket, clone=False)
    push_row = rows[0]
    rows.append(
        Row(
            "transfer",
            "second push of unchanged data",
            "—",
            target=NO_UPLOAD,
            extra={"PUT": push_row.extra["PUT"]},
            note=f"executor's last push: {int(push_row.extra['PUT'])} PUT",
        )
    )
    server.drop_bucket(bucket)
    return rows


def changed(config: Config, s3: S3Repo, data: Dataset) -> list[Row]:
    """Push after k files of the directory changed: time and uploads follow k, not the total
    (store_probe.py measures the same at the API level)."""
    bucket = s3.server.new_bucket()
    s3.push("executor", data, bucket)
    files = sorted(
        p for p in (s3.repo / data.target.removesuffix(".dvc")).rglob("*") if p.is_file()
    )
    rows = []
    for k in config.changed_files:

        def push_after_change(k: int = k) -> float:
            for path in files[:k]:
                path.write_bytes(os.urandom(64))
            s3.tools.dvc(s3.repo, "add", "-q", data.target.removesuffix(".dvc"))
            return s3.move("executor", "push", data, bucket, s3.repo)

        stats = alternate({"executor": push_after_change}, config.slow_rounds, warmup=False)
        counts = s3.requests["executor"]
        rows.append(
            Row(
                "transfer",
                f"push after {k} of {len(files):,} files changed",
                "—",
                stats["executor"],
                target=Target(
                    f"uploads only what changed ({k} files and the .dir)",
                    "count",
                    limit=k + 1,
                    key="PUT",
                ),
                note=f"requests: executor {_requests(counts, k + 1)}",
                extra={"PUT": float(counts["PUT"])},
            )
        )
    s3.server.drop_bucket(bucket)
    return rows


def scenario(config: Config, tools: Tools, inputs: Inputs) -> list[Row]:
    server = MotoServer(config.env)
    try:
        s3 = S3Repo(config, tools, inputs, server)
        kib = config.small_bytes // 1024
        small = s3.add(inputs.small_files(), "small", f"{config.small_files:,} × {kib} KiB")
        rows = moved(config, s3, small)
        if config.transfer_big_bytes:
            mib = config.transfer_big_bytes // 2**20
            rows += moved(
                config, s3, s3.add(inputs.transfer_big(), "push.bin", f"one {mib} MiB file")
            )
        tree = s3.add(inputs.tree(), "tree", "tree")
        return [*rows, *nothing_to_move(config, s3, tree), *changed(config, s3, tree)]
    finally:
        server.stop()
