"""File and directory hashes equal DVC's: the shared vectors, and DVC itself on tricky trees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dvc_data.hashfile.hash import file_md5 as dvc_file_md5

from executor.errors import WorkspaceError
from executor.hashing.digests import READ_SIZE, Dos2UnixMd5, file_md5, file_md5_dos2unix
from executor.hashing.hasher import Hasher
from executor.hashing.objects import DirEntry, manifest_bytes, parse_manifest

SPEC = Path(__file__).resolve().parent / "data" / "dvc-vectors"
VECTORS: dict[str, Any] = json.loads((SPEC / "vectors.json").read_text())
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def fixture_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("vectors") / "fixture"
    shutil.copytree(SPEC / "fixture", dest)  # copy2 keeps modes: combine.sh stays executable
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    return dest


@pytest.fixture()
def hasher() -> Iterator[Hasher]:
    with Hasher() as h:
        yield h


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)


def run_dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(repo / ".site")}
    return subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)


@pytest.fixture()
def dvc_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    assert run_dvc(repo, "init", "-q").returncode == 0
    return repo


@pytest.mark.parametrize("name", sorted(VECTORS["files"]))
def test_fixture_files_hash_as_dvc_recorded(fixture_copy: Path, hasher: Hasher, name: str) -> None:
    want = VECTORS["files"][name]
    info = hasher.hash_path(fixture_copy / name)
    assert (info.md5, info.size, info.isexec, info.nfiles) == (
        want["md5"],
        want["size"],
        want["isexec"],
        None,
    )
    assert file_md5(fixture_copy / name) == want["md5"]


@pytest.mark.parametrize("name", sorted(VECTORS["dirs"]))
def test_fixture_dirs_hash_and_manifest_as_dvc_recorded(fixture_copy: Path, name: str) -> None:
    want = VECTORS["dirs"][name]
    with Hasher(root=fixture_copy) as h:
        info, entries, data = h.hash_tree(fixture_copy / name)
    assert (info.md5, info.size, info.nfiles, info.is_dir) == (
        want["md5"],
        want["size"],
        want["nfiles"],
        True,
    )
    assert data == want["dir_object_json"].encode()
    assert [(e.relpath, e.md5) for e in entries] == parse_manifest(data)
    assert h.hash_path(fixture_copy / name) == info


def test_constants_hello_crlf_and_empty_dir(tmp_path: Path, hasher: Hasher) -> None:
    constants = VECTORS["constants"]
    write(tmp_path, {"hello": "hello\n", "crlf": b"a\r\nb\r\n"})
    (tmp_path / "empty" / "only" / "dirs").mkdir(parents=True)
    assert file_md5(tmp_path / "hello") == constants["md5('hello\\n')"]
    assert file_md5(tmp_path / "crlf") == constants["crlf_file 'a\\r\\nb\\r\\n' md5 (3.x)"]
    assert file_md5_dos2unix(tmp_path / "crlf") == constants["same file md5-dos2unix (2.x)"]
    info, entries, data = hasher.hash_tree(tmp_path / "empty")
    assert (info.md5, info.size, info.nfiles, entries, data) == (
        constants["empty_dir_hash"],
        0,
        0,
        [],
        b"[]",
    )


def test_dos2unix_matches_dvc_data_chunk_by_chunk(tmp_path: Path) -> None:
    text = b"line one\r\nline two\r\n" * 60_000  # > 1 MiB of text
    binary_head = b"\x00" + b"\r\n" * 700
    nontext = bytes(range(128, 256)) * 4  # 512 bytes, all outside printable ASCII
    cases: dict[str, bytes] = {
        "empty": b"",
        "text": text,
        "exact_chunk": (b"ab\r\n" * (MiB // 4))[:MiB],
        # chunk 2 starts with a NUL: only chunk 1 is normalised
        "binary_second_chunk": text[:MiB] + binary_head + b"x\r\n" * 10,
        # CRLF split across the 1 MiB boundary stays as it is
        "split_crlf": b"a" * (MiB - 1) + b"\r\nb\r\n",
        "thirty_percent": (b"\x80" * 30 + b"a" * 70 + b"\r\n") * 4,
        "thirty_one_percent": (b"\x80" * 31 + b"a" * 69) * 5 + b"\r\n",
        "nontext_head": nontext + b"\r\n" * 100,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert file_md5_dos2unix(path) == dvc_file_md5(str(path), name="md5-dos2unix"), name
        assert file_md5(path) == dvc_file_md5(str(path)), name
        # As a download arrives: pieces that never line up with DVC's 1 MiB chunks.
        streamed = Dos2UnixMd5()
        for start in range(0, len(data), 65_537):
            streamed.update(data[start : start + 65_537])
        assert streamed.hexdigest() == file_md5_dos2unix(path), name


def test_files_of_every_size_class_hash_right_in_parallel(tmp_path: Path) -> None:
    sizes = [0, 1, 4095, READ_SIZE - 1, READ_SIZE, READ_SIZE + 1, 3 * READ_SIZE + 7]
    paths = []
    for i, size in enumerate(sizes * 3):
        path = tmp_path / f"f{i}"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    with Hasher(workers=4) as h:
        infos = h.hash_many(paths)
        _, entries, _ = h.hash_tree(tmp_path)
    assert [i.md5 for i in infos] == [dvc_file_md5(str(p)) for p in paths]
    assert [i.size for i in infos] == [p.stat().st_size for p in paths]
    assert {e.relpath: e.md5 for e in entries} == {
        p.name: i.md5 for p, i in zip(paths, infos, strict=True)
    }
    assert h.files_read == 2 * len(paths)


TRICKY: dict[str, str | bytes] = {
    # names whose order differs between str, UTF-16 (json escapes) and path-tuple sorting
    "naïve.txt": "n",
    "日本/語.txt": "j",
    "😀.txt": "e",
    "ｆ.txt": "f",
    "B.txt": "B",
    "a.txt": "a",
    "a/b": "ab",
    "a-b": "a-b",
    "a b": "a b",
    "a0": "a0",
    "crlf.txt": b"x\r\ny\r\n",
    "empty.txt": "",
    "run.sh": "#!/bin/sh\n",
    ".git/HEAD": "ref: refs/heads/main\n",
    "sub/.git": "gitdir: elsewhere\n",  # a .git file is skipped too
    ".hg/store": "h",
    "sub/.hg": "a file named .hg is kept",
    "nested/.dvc/config": "",  # a nested DVC repository is skipped whole
    "nested/f": "sub repo",
    "x.tmp": "ignored by the root .dvcignore",
    "keep.tmp": "re-included by !keep.tmp",
    "build/out.o": "ignored: /data/tricky/build/ is anchored",
    "deep/build/out.o": "kept: the anchored pattern does not match here",
    "logs/l.txt": "ignored by logs/",
    "deep/logs/l.txt": "ignored by logs/ at any depth",
    "secret1": "ignored by data/.dvcignore",
    "deep/secret2": "ignored by data/.dvcignore at any depth",
    "sub/.dvcignore": ".dvcignore\n*.bak\n",  # ignores itself, so DVC accepts it
    "sub/x.bak": "bak",
    "sub/inner/z.bak": "bak",
    "sub/y.txt": "y",
}


def test_tricky_directory_hashes_as_dvc_add(dvc_repo: Path) -> None:
    tricky = dvc_repo / "data" / "tricky"
    write(tricky, TRICKY)
    (tricky / "run.sh").chmod(0o755)
    (tricky / "empty1" / "empty2").mkdir(parents=True)
    write(dvc_repo, {"target.txt": "target content\n", "tdir/t": "t", "tool.sh": "#!/bin/sh\n"})
    (dvc_repo / "tool.sh").chmod(0o744)
    (tricky / "link.txt").symlink_to("../../target.txt")
    (tricky / "linkdir").symlink_to("../../tdir")  # a link to a directory vanishes
    write(dvc_repo, {".dvcignore": "# root\n*.tmp\n!keep.tmp\n/data/tricky/build/\nlogs/\n"})
    write(dvc_repo, {"data/.dvcignore": "secret*\n"})

    done = run_dvc(dvc_repo, "add", "--no-commit", "data/tricky", "tool.sh")
    assert done.returncode == 0, done.stderr
    expected = {}
    for name in ("data/tricky.dvc", "tool.sh.dvc"):
        (out,) = _yaml(dvc_repo / name)["outs"]
        expected[name] = (out["md5"], out["size"], out.get("nfiles"), out.get("isexec", False))

    with Hasher(root=dvc_repo) as h:
        tree, entries, _ = h.hash_tree(tricky)
        tool = h.hash_path(dvc_repo / "tool.sh")
    assert (tree.md5, tree.size, tree.nfiles, tree.isexec) == expected["data/tricky.dvc"]
    assert (tool.md5, tool.size, tool.nfiles, tool.isexec) == expected["tool.sh.dvc"]
    by_path = {e.relpath: e for e in entries}
    assert by_path["link.txt"].md5 == file_md5(dvc_repo / "target.txt")
    assert by_path["run.sh"].isexec and not by_path["a.txt"].isexec
    assert "sub/.hg" in by_path and "sub/.git" not in by_path


def _yaml(path: Path) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(path.read_text())


def test_dvcignore_walk_matches_dvc_ignore_filter(tmp_path: Path) -> None:
    from dvc.fs import localfs
    from dvc.ignore import DvcIgnoreFilter

    root = tmp_path
    write(
        root,
        {
            ".dvcignore": "*.log\n!important.log\nd/**/deep\n/top_only\ncache/\n\\#hash\n",
            "d/.dvcignore": "*.bak\n/anchored\n!keep.bak\nsub/x\ntmpdir/\n",
            "d/sub/.dvcignore": "*\n!*.txt\n!*/\n",
            "d/a.log": "",
            "d/important.log": "",
            "d/deep": "",
            "d/q/deep": "",
            "d/q/r/deep/f": "",
            "d/top_only": "",
            "d/cache/f": "",
            "d/q/cache": "a file: cache/ matches directories only",
            "d/#hash": "",
            "d/v.bak": "",
            "d/keep.bak": "",
            "d/anchored": "",
            "d/w/anchored": "",
            "d/sub/x": "",
            "d/sub/y.txt": "",
            "d/sub/z.bin": "",
            "d/sub/n/m.txt": "",
            "d/sub/n/m.bin": "",
            "d/other/sub/x": "",
            "d/tmpdir/f": "",
            "d/w/tmpdir/f": "",
            "d/w/tmpdir2/f": "",
        },
    )
    top = str(root / "d")
    with pytest.raises(WorkspaceError, match="should not be in collected dir"):
        Hasher(root=root).hash_tree(root / "d")

    def compare(variant: str) -> set[str]:
        theirs = DvcIgnoreFilter(localfs, str(root))
        dvc_files = {os.path.relpath(p, top) for p in theirs.find(localfs, top)}
        _, entries, _ = Hasher(root=root).hash_tree(root / "d")
        assert {e.relpath for e in entries} == dvc_files, variant
        return dvc_files

    # Each .dvcignore ignores itself, as DVC needs inside a collected directory.
    for name in ("d/.dvcignore", "d/sub/.dvcignore"):
        (root / name).write_text((root / name).read_text() + "/.dvcignore\n")
    files = compare("anchored")
    assert {"important.log", "sub/y.txt", "keep.bak", "q/cache"} <= files
    assert not {"a.log", "sub/z.bin", "v.bak", "cache/f", "#hash", "w/tmpdir/f"} & files
    # Unanchored, d's pattern also hides d/sub/.dvcignore, whose rules then do not apply.
    (root / "d/.dvcignore").write_text((root / "d/.dvcignore").read_text() + ".dvcignore\n")
    assert "sub/z.bin" in compare("parent hides child")


@pytest.mark.parametrize(
    "rule",
    [
        "x",
        "/x",
        "x/",
        "a/b",
        "/a/b/",
        "**/x",
        "a/**/b",
        "!x",
        "!/a/b",
        "\\#x",
        "\\!x",
        "*.log",
        "#c",
    ],
)
def test_nested_dvcignore_patterns_rebase_as_dvc_does(rule: str) -> None:
    from dvc.pathspec_math import change_rule

    from executor.hashing.ignore import _rebase

    assert _rebase(rule, "d/sub") == change_rule(rule, "d/sub")


def test_non_utf8_names_are_refused_as_dvc_cannot_track_them(tmp_path: Path) -> None:
    (tmp_path / os.fsdecode(b"\xffraw")).write_bytes(b"x")
    with pytest.raises(WorkspaceError, match="not a UTF-8 name"):
        Hasher().hash_tree(tmp_path)


def test_a_file_that_grew_after_its_stat_is_hashed_whole(tmp_path: Path) -> None:
    path = tmp_path / "grown"
    path.write_bytes(b"0123456789")
    assert file_md5(path, size_hint=3) == file_md5(path) == dvc_file_md5(str(path))


def test_special_files_and_broken_links_are_errors(tmp_path: Path) -> None:
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "pipe")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "link").symlink_to("nowhere")
    with Hasher() as h:
        with pytest.raises(WorkspaceError, match="not a regular file"):
            h.hash_tree(tmp_path / "fifo")
        with pytest.raises(FileNotFoundError):
            h.hash_tree(tmp_path / "broken")
        with pytest.raises(FileNotFoundError):
            h.hash_file(tmp_path / "missing")


def test_manifest_is_sorted_canonical_json_and_parses_back() -> None:
    entries = [
        DirEntry("😀", "b" * 32, 1, False),
        DirEntry("ｆ", "a" * 32, 1, True),
        DirEntry("a/b", "c" * 32, 1, False),
        DirEntry("a-b", "d" * 32, 1, False),
    ]
    data = manifest_bytes(entries)
    assert data == (
        b'[{"md5": "dddddddddddddddddddddddddddddddd", "relpath": "a-b"}, '
        b'{"md5": "cccccccccccccccccccccccccccccccc", "relpath": "a/b"}, '
        b'{"md5": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "relpath": "\\uff46"}, '
        b'{"md5": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "relpath": "\\ud83d\\ude00"}]'
    )
    assert parse_manifest(data)[2] == ("ｆ", "a" * 32)


@pytest.mark.parametrize("relpath", ["../x", "/etc/passwd", "a/../../x", "a//b", "./a", ""])
def test_manifest_paths_escaping_the_directory_are_refused(relpath: str) -> None:
    data = json.dumps([{"md5": "a" * 32, "relpath": relpath}]).encode()
    with pytest.raises(WorkspaceError, match="not a safe path"):
        parse_manifest(data)
