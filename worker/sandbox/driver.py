"""The container's command: a POSIX sh driver that runs each line as DVC does.

Every line is its own `$SHELL [flags] -c LINE` process, in order, stopping at the first
non-zero exit (as DVC runs them). All of them stay in the driver's process group, so
tini (with TINI_KILL_PROCESS_GROUP) delivers a stop signal to the whole running tree. The driver
traps the signal only to remember it: it keeps waiting while the line's own handlers clean up
(if it died at once, tini would exit and the kernel would SIGKILL the rest), then runs no more
lines, and before it exits waits for the processes of its group that got the signal and
are still handling it (`settle`: alive, in the group, not ignoring that signal, from
/proc): the line's shell may die of SIGTERM at once while a program it started (python, say)
is still in its handler. Processes that ignore the signal (an `&` job ignores SIGINT) or left
the group (setsid) do not hold it up; tini's exit kills them. The sandbox's SIGKILL after
the grace bounds the wait.
It writes `MARKER 0 0` to stderr when it starts, `MARKER INDEX S` as each line starts
(so the runner can print DVC's `> LINE` at the right moment) and `MARKER INDEX CODE` on
failure, so a missing shell and the failed line can be told from the output, and `MARKER E`
on stdout and on stderr once every line succeeded: once both arrived, all the output is in and
the stage is done, as it is for `dvc repro` when its shell exits, without waiting for the
engine to tear the container down (tini's exit then kills any process the lines left behind).
The marker is random per run.

Before anything, the driver waits at its gate: one line on stdin (DockerSandbox.release writes
it). End of input instead (the runner discarded the container, or died) exits 125 having run
nothing. Past the gate a watchdog keeps reading stdin, which the runner holds open until the
stage is over: end of input while the lines run means the runner died (SIGKILL, a lost
host), and the watchdog stops the stage as the runner would have (SIGTERM, then SIGKILL
after the grace), so no orphaned stage keeps writing into the workspace.
Past the gate it enters its working directory again by path: a container started
early holds the directory as it was then, and an upstream stage may have replaced it since.
The lines then run with stdin from /dev/null: a sandboxed stage reads no input.
"""

from __future__ import annotations

import posixpath
import re
import secrets
from dataclasses import dataclass

# A trap that only records the signal is reset to the default in every child (a trap of ''
# would be inherited as "ignored"). `$f` is unquoted on purpose: it holds zero to two flags.
DRIVER = """\
read -r _ || exit 125
exec 3<&0 </dev/null
m=$1 s=$2 f=$3 k=$5
{ trap '' HUP INT TERM; read -r _ <&3; kill -TERM 0; sleep "$k"; kill -KILL 0; } &
w=$!
exec 3<&-
cd -- "$4" || exit 1
unset TINI_KILL_PROCESS_GROUP
shift 5
printf '%s 0 0\\n' "$m" >&2
g=0 i=0
handling() {
  { read -r x < "/proc/$1/stat"; } 2>/dev/null || return 1
  q=$1
  x=${x##*) }
  set -- $x
  [ "$1" != Z ] && [ "$3" = "$G" ] || return 1
  { while read -r n v; do
      case $n in SigIgn:) v=${v#"${v%????}"}; return $(( (0x$v & b) != 0 ));; esac
    done < "/proc/$q/status"; } 2>/dev/null
  return 1
}
settle() {
  case $g in 129) b=1 ;; 130) b=2 ;; *) b=16384 ;; esac
  read -r x < /proc/$$/stat
  x=${x##*) }
  set -- $x
  G=$3
  while :; do
    y=
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      [ "$p" = 1 ] || [ "$p" = $$ ] || [ "$p" = "$w" ] || ! handling "$p" || { y=1; break; }
    done
    [ -n "$y" ] || return 0
    sleep 0.1 2>/dev/null || sleep 1 2>/dev/null || return 0
  done
}
trap 'g=129' HUP
trap 'g=130' INT
trap 'g=143' TERM
for l do
  i=$((i+1))
  [ "$g" -eq 0 ] || break
  printf '%s %d S\\n' "$m" "$i" >&2
  "$s" $f -c "$l"
  r=$?
  [ "$r" -ne 0 ] || [ "$g" -ne 0 ] || continue
  [ "$r" -ne 0 ] || r=$g
  printf '%s %d %d\\n' "$m" "$i" "$r" >&2
  [ "$g" -eq 0 ] || settle
  exit "$r"
done
[ "$g" -eq 0 ] || { printf '%s %d %d\\n' "$m" "$i" "$g" >&2; settle; exit "$g"; }
printf '%s E\\n' "$m"
printf '%s E\\n' "$m" >&2
"""


def _seconds(value: float) -> str:
    """A duration as `sleep` reads it: plain decimal, never an exponent."""
    return format(value, ".3f").rstrip("0").rstrip(".") or "0"


DRIVER_SHELL = "/bin/sh"  # runs DRIVER; every image with a shell has it
DEFAULT_SHELL = "/bin/sh"  # DVC's fallback when SHELL is unset or empty

# DVC's `_make_cmd`: flags by the lower-cased basename of the shell. fish >= 3.3 is assumed
# (DVC probes `fish --version`; a container cannot be probed before it runs).
_SHELL_FLAGS = {"bash": "--noprofile --norc", "zsh": "--no-rcs", "fish": "--no-config"}


def shell_flags(shell: str) -> str:
    """DVC's extra arguments for `shell`, space-separated."""
    return _SHELL_FLAGS.get(posixpath.basename(shell).lower(), "")


@dataclass(frozen=True)
class Invocation:
    """The entrypoint and command of a stage container, and how to read its failure marker."""

    entrypoint: tuple[str, ...]
    command: tuple[str, ...]
    marker: str

    @classmethod
    def build(
        cls, shell: str, lines: tuple[str, ...], workdir: str = ".", grace: float = 10.0
    ) -> Invocation:
        marker = f"executor-failed-{secrets.token_hex(8)}"
        return cls(
            entrypoint=(DRIVER_SHELL, "-c", DRIVER, "executor-driver"),
            command=(marker, shell, shell_flags(shell), workdir, _seconds(grace), *lines),
            marker=marker,
        )

    def find_start(self, text: str) -> int | None:
        """The 1-based index of the line a log line announces as starting, else None."""
        match = re.search(re.escape(self.marker) + r" (\d+) S$", text)
        return int(match[1]) if match else None

    def is_end(self, text: str) -> bool:
        """Whether a log line is the driver's end marker (every line succeeded)."""
        return text.endswith(f"{self.marker} E")

    def find(self, text: str) -> tuple[int, int] | None:
        """(1-based line index, exit code) from a log line holding the marker, else None."""
        match = re.search(re.escape(self.marker) + r" (\d+) (\d+)", text)
        return (int(match[1]), int(match[2])) if match else None
