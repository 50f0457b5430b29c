"""DVC's remotes read as DVC reads them: every config level, relative paths, and the options
executor applies, ignores or refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from executor.dvcformat.config import cache_dir, cache_types
from executor.dvcformat.remotes import find_remote
from executor.errors import ConfigError
from executor.s3access import S3Access
from executor.settings import Settings
from executor.store.open import open_store
from executor.store.routes import routes
from executor.store.tracked import Tracked


@pytest.fixture()
def dvc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "global"))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path / "system"))
    (tmp_path / "repo/.dvc").mkdir(parents=True)
    return tmp_path / "repo/.dvc"


def test_the_default_remote_with_keys_from_config_local(dvc_dir: Path) -> None:
    (dvc_dir / "config").write_text(
        "[core]\n    remote = team\n"
        "['remote \"team\"']\n    url = s3://bucket/some/prefix\n"
        "    endpointurl = http://127.0.0.1:9000\n    region = eu-west-1\n    jobs = 4\n"
    )
    (dvc_dir / "config.local").write_text(
        "['remote \"team\"']\n    access_key_id = AKIDLOCAL\n    secret_access_key = s3cr3t\n"
        "    read_timeout = 30\n    ssl_verify = false\n"
    )
    remote = find_remote(dvc_dir)
    assert remote is not None
    assert (remote.name, remote.url) == ("team", "s3://bucket/some/prefix")
    assert remote.s3 == S3Access(
        endpoint_url="http://127.0.0.1:9000",
        region="eu-west-1",
        access_key_id="AKIDLOCAL",
        secret_access_key="s3cr3t",
        read_timeout=30.0,
        verify=False,
    )
    assert "s3cr3t" not in repr(remote) and "AKIDLOCAL" not in repr(remote)


def test_levels_and_relative_paths_resolve_from_their_own_file(dvc_dir: Path) -> None:
    glob = dvc_dir.parent.parent / "global"
    glob.mkdir()
    (glob / "config").write_text(
        "[core]\n    remote = shared\n['remote \"shared\"']\n    url = ../shared-store\n"
        "[cache]\n    dir = machine-cache\n"
    )
    remote = find_remote(dvc_dir)
    assert remote is not None and remote.url == str(dvc_dir.parent.parent / "shared-store")
    assert cache_dir(dvc_dir) == glob / "machine-cache"
    (dvc_dir / "config").write_text(
        "[core]\n    remote = mine\n['remote \"mine\"']\n    url = ../../store\n"
    )
    remote = find_remote(dvc_dir)
    assert remote is not None and remote.url == str(dvc_dir.parent.parent / "store")
    assert find_remote(dvc_dir, "shared") is not None  # the global one is still there by name


def test_names_with_spaces_and_quoted_values(dvc_dir: Path) -> None:
    (dvc_dir / "config").write_text('[\'remote "my store"\']\n    url = "/data/with space"\n')
    remote = find_remote(dvc_dir, "my store")
    assert remote is not None and remote.url == "/data/with space"


def test_no_default_remote_is_none_and_wrong_names_are_explained(dvc_dir: Path) -> None:
    assert find_remote(dvc_dir) is None
    (dvc_dir / "config").write_text(
        "[core]\n    remote = gone\n['remote \"here\"']\n    url = /x\n"
    )
    with pytest.raises(ConfigError, match=r"default remote 'gone' \(.*config\) is not defined"):
        find_remote(dvc_dir)
    with pytest.raises(ConfigError, match=r"no DVC remote named 'nope' \(defined: here\)"):
        find_remote(dvc_dir, "nope")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("url = gs://b/p", r"gs://b/p: executor stores are S3 \(s3://\) or folders"),
        ("url = s3://b/p\n    sse_customer_key = k", r"sets sse_customer_key .* does not apply"),
        ("url = s3://b/p\n    acl = private\n    grant_read = id=1", r"both acl and grant_"),
        ("url = s3://b/p\n    version_aware = true", r"sets version_aware = true"),
        ("url = /x\n    endpointurl = http://h", r"sets endpointurl"),  # S3 options only on S3
        ("url = s3://b/p\n    read_timeout = soon", r"read_timeout = 'soon' .* seconds above 0"),
        ("url = s3://b/p\n    use_ssl = maybe", r"use_ssl = 'maybe' .* is not true or false"),
        ("endpointurl = http://h", r"has no url"),
    ],
)
def test_options_executor_cannot_honour_are_refused(
    dvc_dir: Path, lines: str, message: str
) -> None:
    (dvc_dir / "config").write_text(f"['remote \"r\"']\n    {lines}\n")
    with pytest.raises(ConfigError, match=message):
        find_remote(dvc_dir, "r")


def test_options_executor_applies_or_that_have_no_effect_here_are_accepted(dvc_dir: Path) -> None:
    (dvc_dir / "config").write_text(
        "['remote \"r\"']\n    url = s3://b/p\n    version_aware = false\n    verify = true\n"
        "    checksum_jobs = 2\n    listobjects = true\n    ssl_verify = /etc/ca.pem\n"
        "    profile = team\n    credentialpath = creds\n    sse = aws:kms\n"
        "    sse_kms_key_id = alias/team\n    grant_read = id=abc\n"
    )
    remote = find_remote(dvc_dir, "r")
    assert remote is not None
    assert remote.s3.write_args() == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/team",
        "GrantRead": "id=abc",
    }
    assert remote.s3.verify == "/etc/ca.pem" and remote.s3.profile == "team"
    assert remote.s3.credentials_file == str(dvc_dir / "creds")


def _routes(
    dvc_dir: Path, outputs: list[Tracked], **given: Any
) -> list[tuple[str, list[str], bool]]:
    root = dvc_dir.parent
    found = routes("push", outputs, Settings(), root, root, **given)
    return [(r.name, [o.path for o in r.outputs], r.run_cache) for r in found]


def test_routes_follow_each_output_s_remote_then_the_default(dvc_dir: Path) -> None:
    outs = [Tracked("a", "1" * 32), Tracked("b", "2" * 32, remote="other")]
    (dvc_dir / "config").write_text(
        "[core]\n    remote = main\n['remote \"main\"']\n    url = /m\n"
        "['remote \"other\"']\n    url = /o\n"
    )
    assert _routes(dvc_dir, outs, run_cache=True) == [
        ("main", ["a"], True),
        ("other", ["b"], False),
    ]
    assert _routes(dvc_dir, outs, remote="main") == [("main", ["a"], False)]  # b: DVC skips it
    assert _routes(dvc_dir, outs, store_url="/s") == [("/s", ["a", "b"], False)]
    outs.append(Tracked("c", "3" * 32, file="c.dvc", remote="gone"))
    with pytest.raises(ConfigError, match=r"output 'c' \(c.dvc\): no DVC remote named 'gone'"):
        _routes(dvc_dir, outs)


def test_outputs_with_nowhere_to_go_are_named(dvc_dir: Path) -> None:
    (dvc_dir / "config").write_text("['remote \"other\"']\n    url = /o\n")
    assert _routes(dvc_dir, [Tracked("b", "2" * 32, remote="other")]) == [("other", ["b"], False)]
    with pytest.raises(ConfigError, match=r"no store to push 'a' to: pass --store URL or -r"):
        _routes(dvc_dir, [Tracked("a", "1" * 32)])
    with pytest.raises(ConfigError, match=r"no store to push: pass --store URL"):
        _routes(dvc_dir, [])


def test_inline_comments_and_quotes_as_configobj_reads_them(dvc_dir: Path) -> None:
    (dvc_dir / "config").write_text(
        "[core]\n    remote = backup   # the disk\n"
        "['remote \"backup\"']\n    url = /mnt/backup   # the big disk\n"
        '[\'remote "hash"\']\n    url = "/data/with#hash"\n'
        "[cache]\n    dir = /shared/cache  # team cache\n    type = hardlink,copy # saves space\n"
    )
    remote = find_remote(dvc_dir)
    assert remote is not None and remote.url == "/mnt/backup"
    quoted = find_remote(dvc_dir, "hash")
    assert quoted is not None and quoted.url == "/data/with#hash"
    assert cache_dir(dvc_dir) == Path("/shared/cache")
    assert cache_types(dvc_dir) == ("hardlink", "copy")


def test_remote_names_and_keys_are_case_blind_as_in_dvc(dvc_dir: Path) -> None:
    (dvc_dir / "config").write_text(
        "[core]\n    remote = MyRemote\n['remote \"MyRemote\"']\n    URL = s3://b/p\n"
        "    EndpointURL = http://127.0.0.1:9000\n"
    )
    for name in (None, "myremote", "MYREMOTE"):
        remote = find_remote(dvc_dir, name)
        assert remote is not None and remote.url == "s3://b/p"
        assert remote.s3.endpoint_url == "http://127.0.0.1:9000"
    outs = [Tracked("a", "1" * 32, remote="MYREMOTE")]
    assert _routes(dvc_dir, outs, remote="MyRemote") == [("myremote", ["a"], False)]
    assert _routes(dvc_dir, outs) == [("myremote", ["a"], False)]


def test_folder_remotes_accept_dvc_s_local_options_and_remote_urls_are_explained(
    dvc_dir: Path,
) -> None:
    (dvc_dir / "config").write_text(
        "['remote \"local\"']\n    url = /store\n    type = copy\n    slow_link_warning = false\n"
        "['remote \"nested\"']\n    url = remote://local/sub\n"
    )
    remote = find_remote(dvc_dir, "local")
    assert remote is not None and remote.url == "/store"
    with pytest.raises(ConfigError, match=r"remote://local/sub, a path inside another remote"):
        find_remote(dvc_dir, "nested")


def test_run_cache_without_a_default_remote_says_where_to_send_it(dvc_dir: Path) -> None:
    (dvc_dir / "config").write_text("['remote \"other\"']\n    url = /o\n")
    outs = [Tracked("b", "2" * 32, remote="other")]
    with pytest.raises(ConfigError, match=r"--run-cache needs a store .* pass -r REMOTE"):
        _routes(dvc_dir, outs, run_cache=True)
    assert _routes(dvc_dir, outs, remote="other", run_cache=True) == [("other", ["b"], True)]


def test_executor_s_endpoint_setting_leaves_dvc_remotes_alone() -> None:
    settings = Settings(s3_endpoint_url="http://127.0.0.1:9")
    ours = open_store("s3://b/p", settings)
    theirs = open_store("s3://b/p", settings, access=S3Access(region="eu-west-1"))
    try:
        assert ours.client.meta.endpoint_url == "http://127.0.0.1:9"  # type: ignore[attr-defined]
        aws = theirs.client.meta.endpoint_url  # type: ignore[attr-defined]
        assert aws.startswith("https://s3.") and "amazonaws.com" in aws
    finally:
        ours.close()
        theirs.close()
