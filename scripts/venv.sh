# Sourced by the scripts after scripts/setup: the project's virtual environment first on PATH,
# so `python3`, `executor`, `executor-worker`, `dvc` and `moto_server` are the ones it installed.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV="$_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
unset _root
