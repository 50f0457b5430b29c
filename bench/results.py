"""What a scenario reports: rows of executor figure, peer figure, ratio and target."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.measure import Stats

Status = Literal["measured", "pending", "placeholder", "failed"]


@dataclass(frozen=True)
class Target:
    """A goal from the issues. `ratio`: executor ÷ peer (time) at most `limit`; `difference`:
    executor − peer at most `limit` (seconds); `count`: the extra figure `key` at most `limit`
    (e.g. no PUT at all); `seconds`: executor's own median at most `limit` (no peer)."""

    text: str  # as the issue states it
    kind: Literal["ratio", "difference", "count", "seconds"]
    limit: float = 0.0
    key: str = ""

    def met(self, row: Row) -> bool | None:
        if self.kind == "count":
            value = row.extra.get(self.key)
            return None if value is None else value <= self.limit
        if self.kind == "seconds":
            return None if row.executor is None else row.executor.median <= self.limit
        if row.executor is None or row.peer is None:
            return None
        if self.kind == "ratio":
            return row.ratio is not None and row.ratio <= self.limit
        return row.executor.median - row.peer.median <= self.limit


@dataclass
class Row:
    """One line of BENCHMARKS.md. Figures are seconds unless `unit` says otherwise."""

    scenario: str
    case: str
    peer_name: str
    executor: Stats | None = None
    peer: Stats | None = None
    unit: str = "s"
    target: Target | None = None
    status: Status = "measured"
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)  # requests, files read, ...
    plot: tuple[str, int] | None = None  # (series, pipeline size) for the plot
    profile: str = ""  # top profile entries, filled in when the target is missed

    @property
    def ratio(self) -> float | None:
        if self.executor is None or self.peer is None or self.peer.median == 0:
            return None
        return self.executor.median / self.peer.median

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "case": self.case,
            "peer_name": self.peer_name,
            "unit": self.unit,
            "status": self.status,
            "executor": self.executor.to_dict() if self.executor else None,
            "peer": self.peer.to_dict() if self.peer else None,
            "ratio": self.ratio,
            "target": self.target.text if self.target else None,
            "target_spec": dataclasses.asdict(self.target) if self.target else None,
            "plot": list(self.plot) if self.plot else None,
            "met": self.met,
            "note": self.note,
            "extra": self.extra,
            "profile": self.profile,
        }


def save(rows: list[Row], meta: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps({"machine": meta, "rows": [r.to_dict() for r in rows]}, indent=1))


def load(path: Path) -> tuple[list[Row], dict[str, Any]]:
    """The rows and machine description `save` wrote (to rewrite the report without a rerun)."""
    data = json.loads(path.read_text())
    rows = []
    for r in data["rows"]:
        spec = r.get("target_spec")
        rows.append(
            Row(
                r["scenario"],
                r["case"],
                r["peer_name"],
                Stats(tuple(r["executor"]["samples"])) if r["executor"] else None,
                Stats(tuple(r["peer"]["samples"])) if r["peer"] else None,
                unit=r["unit"],
                target=Target(**spec) if spec else None,
                status=r["status"],
                note=r["note"],
                extra=r["extra"],
                plot=(r["plot"][0], r["plot"][1]) if r.get("plot") else None,
                profile=r["profile"],
            )
        )
    return rows, data["machine"]
