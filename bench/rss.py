"""Peak RSS of a command's process tree, from a small process:

    python -m bench.rss OUTFILE -- COMMAND [ARGS...]

Linux carries a process's RSS high-water mark across fork and exec, so a command started
straight from the harness (tens of MiB) would report at least the harness's size. Started from
this small wrapper, the floor is the wrapper's (~10 MiB). Writes ru_maxrss (KiB) to OUTFILE
and exits with the command's status.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    outfile, sep, *argv = sys.argv[1:]
    if sep != "--" or not argv:
        sys.exit(__doc__)
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    with open(outfile, "w") as f:
        f.write(str(usage.ru_maxrss))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
