"""A repository with datasets `dvc add`ed, moved to and from moto's S3 server by executor,
DVC or raw boto3 (`bench.raw_s3`), each a fresh process, requests counted at the server."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import pipelines
from bench.config import Config
from bench.inputs import Inputs
from bench.profiling import profile_threaded
from bench.s3server import MotoServer
from bench.tools import Tools


@dataclass(frozen=True)
class Dataset:
    target: str  # the .dvc file naming it
    label: str
    objects: list[tuple[str, str, int]]  # (cache path, key under the prefix, size)


class S3Repo:
    """One repository with the datasets `dvc add`ed, and the server."""

    def __init__(self, config: Config, tools: Tools, inputs: Inputs, server: MotoServer) -> None:
        self.config, self.tools, self.inputs, self.server = config, tools, inputs, server
        self.repo = inputs.fresh("transfer")
        pipelines.init_repo(self.repo, inputs.site_cache)
        self.endpoint = server.endpoint
        self.requests: dict[str, Counter[str]] = {}

    def add(self, source: Path, name: str, label: str) -> Dataset:
        dest = self.repo / "data" / name
        dest.parent.mkdir(exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, dest)
        self.tools.dvc(self.repo, "add", "-q", f"data/{name}")
        return Dataset(f"data/{name}.dvc", label, self._objects(f"data/{name}.dvc"))

    def _objects(self, dvcfile: str) -> list[tuple[str, str, int]]:
        text = (self.repo / dvcfile).read_text()
        md5 = text.split("md5: ", 1)[1].split()[0]
        md5s = [md5]
        if md5.endswith(".dir"):
            md5s += [e["md5"] for e in json.loads(self._cache(md5).read_text())]
        return [(str(self._cache(m)), self._key(m), self._cache(m).stat().st_size) for m in md5s]

    def _cache(self, md5: str) -> Path:
        return self.repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    @staticmethod
    def _key(md5: str) -> str:
        return f"store/files/md5/{md5[:2]}/{md5[2:]}"

    def url(self, bucket: str) -> str:
        return f"s3://{bucket}/store?endpoint_url={self.endpoint}"

    def use_remote(self, repo: Path, bucket: str) -> None:
        """Point DVC's default remote at the bucket (written directly: no dvc call)."""
        config = repo / ".dvc" / "config"
        text = config.read_text().split("['remote")[0].replace("    remote = bench\n", "")
        text = text.replace("[core]\n", "[core]\n    remote = bench\n", 1)
        config.write_text(
            f"{text}['remote \"bench\"']\n    url = s3://{bucket}/store\n"
            f"    endpointurl = {self.endpoint}\n"
        )

    def clone(self, name: str) -> Path:
        """The repository without its cache and data: what a fresh clone sees."""
        path = self.inputs.fresh(name)
        data, dvc = str(self.repo / "data"), str(self.repo / ".dvc")

        def skip(folder: str, names: list[str]) -> set[str]:
            if folder == data:
                return {n for n in names if not n.endswith(".dvc")}
            return {"cache", "tmp"} & set(names) if folder == dvc else set()

        shutil.copytree(self.repo, path, ignore=skip)
        return path

    def move(self, tool: str, action: str, data: Dataset, bucket: str, repo: Path) -> float:
        """`tool` pushes or pulls `data` between `repo` and the bucket; seconds taken."""
        if tool == "dvc":
            self.use_remote(repo, bucket)

        def go() -> float:
            if tool == "executor":
                url = self.url(bucket)
                return self.tools.executor(repo, action, data.target, "--store", url).seconds
            if tool == "dvc":
                return self.tools.dvc(repo, action, "-q", data.target).seconds
            if action == "push":
                return self._raw(action, bucket, data.objects)
            into = [(str(repo / "raw" / key), key, size) for _, key, size in data.objects]
            return self._raw(action, bucket, into)

        with self.server.counting() as counts:
            seconds = go()
        self.requests[tool] = counts
        return seconds

    def push(self, tool: str, data: Dataset, bucket: str) -> float:
        return self.move(tool, "push", data, bucket, self.repo)

    def pull(self, tool: str, data: Dataset, bucket: str) -> float:
        """Pull into a fresh clone (removed afterwards); executor and DVC check the data out."""
        clone = self.clone(f"pull-{tool}")
        try:
            seconds = self.move(tool, "pull", data, bucket, clone)
            if tool != "raw" and not (clone / data.target.removesuffix(".dvc")).exists():
                raise RuntimeError(f"{tool} pull did not check out {data.target}")
            return seconds
        finally:
            shutil.rmtree(clone)

    def _raw(self, action: str, bucket: str, items: list[tuple[str, str, int]]) -> float:
        listfile = self.inputs.fresh("raw-list.json")
        listfile.parent.mkdir(parents=True, exist_ok=True)
        listfile.write_text(json.dumps(items))
        threads = str(self.config.raw_threads)
        return self.tools.python(
            "bench.raw_s3", action, self.endpoint, bucket, str(listfile), "--threads", threads
        ).seconds

    def profile(self, action: str, data: Dataset, bucket: str, clone: bool) -> str:
        """Profile executor's `action` of `data` against the bucket, in the repository or (to
        pull what is missing) in a fresh clone."""
        repo = self.clone("profile") if clone else self.repo
        try:
            args = (action, data.target, "--store", self.url(bucket))
            return profile_threaded(self.tools, repo, args)
        finally:
            if clone:
                shutil.rmtree(repo)
