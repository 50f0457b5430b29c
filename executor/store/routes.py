"""Which store each output goes to (push) or comes from (pull), as `dvc push`/`dvc pull` decide.

In order: `--store URL` takes every output; `-r NAME` takes the outputs that name no other
remote (DVC skips the rest); `EXECUTOR_STORE` (or `.executor.yaml`'s `store`) takes every
output; else each output goes to the remote its `remote:` field names, the others to DVC's
default remote. Run-cache entries go with the store that `-r` or the default names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from executor.dvcformat.remotes import DvcRemote, find_remote
from executor.errors import ConfigError
from executor.settings import Settings
from executor.store.base import ObjectStore
from executor.store.open import open_store
from executor.store.tracked import Tracked


@dataclass(frozen=True)
class Route:
    """Some outputs and the store they move to or from (opened when their turn comes)."""

    name: str  # the store URL or the DVC remote's name, for messages
    open: Callable[[], ObjectStore]
    outputs: list[Tracked]
    run_cache: bool  # whether run-cache entries move along this route


def routes(
    action: str,
    outputs: list[Tracked],
    settings: Settings,
    root: Path,
    cwd: Path,
    *,
    store_url: str | None = None,
    remote: str | None = None,
    run_cache: bool = False,
) -> list[Route]:
    if store_url:
        url = store_url
        return [Route(url, lambda: open_store(url, settings, base=cwd), outputs, run_cache)]
    dvc_dir = root / ".dvc"
    if remote is not None:
        chosen = find_remote(dvc_dir, remote)
        assert chosen is not None
        mine = [o for o in outputs if o.remote.lower() in ("", chosen.name)]
        return [_route(chosen, settings, root, mine, run_cache)]
    if settings.store:
        url = settings.store
        return [Route(url, lambda: open_store(url, settings, base=root), outputs, run_cache)]
    default = find_remote(dvc_dir)
    groups: dict[str, list[Tracked]] = {default.name: []} if default else {}
    if run_cache and default is None:
        raise ConfigError(
            f"--run-cache needs a store to {action} run-cache entries: pass -r REMOTE or "
            "--store URL, or give the repository a default DVC remote (dvc remote add -d)"
        )
    for out in outputs:
        name = out.remote.lower() or (default.name if default else "")
        if not name:
            raise ConfigError(
                f"no store to {action} '{out.path}' {'to' if action == 'push' else 'from'}: "
                "pass --store URL or -r REMOTE, set EXECUTOR_STORE, or give the repository "
                "a default DVC remote (dvc remote add -d NAME URL)"
            )
        groups.setdefault(name, []).append(out)
    if not groups:
        raise ConfigError(
            f"no store to {action}: pass --store URL or -r REMOTE, set EXECUTOR_STORE, or "
            "give the repository a default DVC remote (dvc remote add -d NAME URL)"
        )
    found: list[Route] = []
    for name, outs in groups.items():
        chosen = default if default and name == default.name else _named(dvc_dir, name, outs)
        is_default = default is not None and name == default.name
        if outs or (is_default and run_cache) or len(groups) == 1:
            found.append(_route(chosen, settings, root, outs, run_cache and is_default))
    return found


def _named(dvc_dir: Path, name: str, outputs: list[Tracked]) -> DvcRemote:
    try:
        chosen = find_remote(dvc_dir, name)
    except ConfigError as exc:
        raise ConfigError(f"output '{outputs[0].path}' ({outputs[0].file}): {exc}") from exc
    assert chosen is not None
    return chosen


def _route(
    remote: DvcRemote, settings: Settings, root: Path, outputs: list[Tracked], run_cache: bool
) -> Route:
    def opener() -> ObjectStore:
        return open_store(remote.url, settings, base=root, access=remote.s3)

    return Route(remote.name, opener, outputs, run_cache)
