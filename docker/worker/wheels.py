"""Gather the wheels of executor and of everything it needs on a target Python, here, so that
the worker image installs them with no network.

    python docker/worker/wheels.py SRC OUT MARKERS_JSON

`pip wheel` resolves dependencies for the Python running it. The image's Python may differ
(Debian's 3.11.2 here, which needs async-timeout for redis, where 3.11.7 does not): each
wheel's requirements are evaluated again with the target's marker values (MARKERS_JSON, as
printed in the base image) and whatever is missing is downloaded, until nothing is.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

PIP = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]


def requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(z.read(meta).decode("utf-8"))
    return [Requirement(r) for r in headers.get_all("Requires-Dist") or []]


def missing(out: Path, target: dict[str, str]) -> set[str]:
    have = {canonicalize_name(parse_wheel_filename(w.name)[0]) for w in out.glob("*.whl")}
    wanted: set[str] = set()
    for wheel in out.glob("*.whl"):
        for req in requirements(wheel):
            applies = req.marker is None or req.marker.evaluate({**target, "extra": ""})
            if applies and canonicalize_name(req.name) not in have:
                wanted.add(str(req).split(";")[0].strip())
    return wanted


def main() -> None:
    src, out, markers = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    target = json.loads(markers)
    subprocess.run([*PIP, "wheel", "-w", str(out), str(src)], check=True)
    for _ in range(10):
        wanted = missing(out, target)
        if not wanted:
            return
        subprocess.run([*PIP, "wheel", "-w", str(out), *sorted(wanted)], check=True)
    sys.exit(f"wheels.py: requirements still missing after 10 rounds: {sorted(wanted)}")


if __name__ == "__main__":
    main()
