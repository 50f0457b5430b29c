"""The `executor` command line.

app        the group, `run` and `submit`: settings, the backend, exit statuses
pushpull   `push` and `pull` between the cache and a store
"""

from executor.cli.app import main

__all__ = ["main"]
