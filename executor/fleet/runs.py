"""A fleet run in Redis: what `executor submit --detach` left for the workers to carry on,
and what `executor runs/status/logs/cancel/fetch` read from any shell.

A run is a hash of its facts (who, where, when, its stages in plan order, its state) and a
hash of its stages' states, each a small JSON record: waiting, queued, running, ran,
restored, skipped, failed, cancelled or not run, with its job, worker, times and, once
done, its result. A stage changes state only by compare-and-set (`move`), so two workers
finishing the last two upstream stages at once enqueue the stage after them once. Every key
of a run expires RUN_TTL after its last change; the durable results are in the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from executor.errors import UserError
from executor.fleet.keys import redis_errors
from executor.fleet.runrecords import RunInfo, StageState, is_run_id

RUN_TTL = 7 * 24 * 3600  # seconds a run's record lives after its last change
RUNS_KEY = "executor:runs"  # sorted set: run id -> its creation time
SETTLED = frozenset({"ran", "restored", "skipped"})  # done, with a result
ENDED = SETTLED | {"failed", "cancelled", "not run"}
LIVE = frozenset({"waiting", "queued", "running"})


# Set a stage's record if its state is one of ARGV[2] (comma-separated; '*' any state) and,
# with ARGV[5], its job is that one. A record that is not a JSON object matches no state.
MOVE = """
local cur = redis.call('hget', KEYS[1], ARGV[1])
local state, job = '', ''
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if not ok or type(doc) ~= 'table' then return 0 end
  if type(doc['state']) == 'string' then state = doc['state'] end
  if type(doc['job']) == 'string' then job = doc['job'] end
end
if ARGV[2] ~= '*' and not string.find(',' .. ARGV[2] .. ',', ',' .. state .. ',', 1, true) then
  return 0
end
if ARGV[5] ~= '' and job ~= ARGV[5] then return 0 end
redis.call('hset', KEYS[1], ARGV[1], ARGV[3])
redis.call('expire', KEYS[1], ARGV[4])
return 1
"""


def run_key(run_id: str) -> str:
    return f"executor:run:{run_id}"


def stages_key(run_id: str) -> str:
    return f"executor:run:{run_id}:stages"


def templates_key(run_id: str) -> str:
    """A stage's job spec as far as the submitter could resolve it (fleet.templates)."""
    return f"executor:run:{run_id}:templates"


def job_run_key(job_id: str) -> str:
    """Which run and stage a job works for: `RUN_ID<TAB>ADDRESS`."""
    return f"executor:job:{job_id}:run"


class Runs:
    """The runs recorded in one Redis."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def create(
        self,
        info: RunInfo,
        templates: Mapping[str, Mapping[str, Any]],
        states: Mapping[str, StageState],
    ) -> None:
        """Record a new run with its stages' templates and first states, all at once."""
        with redis_errors("recording the run"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(run_key(info.id), mapping={"info": json.dumps(info.to_dict())})
            if templates:
                pipe.hset(
                    templates_key(info.id),
                    mapping={k: json.dumps(v) for k, v in templates.items()},
                )
            if states:
                pipe.hset(stages_key(info.id), mapping={k: s.to_json() for k, s in states.items()})
            for key in (run_key(info.id), templates_key(info.id), stages_key(info.id)):
                pipe.expire(key, RUN_TTL)
            pipe.zadd(RUNS_KEY, {info.id: info.created})
            pipe.zremrangebyscore(RUNS_KEY, 0, time.time() - RUN_TTL)
            pipe.execute()

    def info(self, run_id: str) -> RunInfo:
        if not is_run_id(run_id):
            raise UserError(f"'{run_id[:80]}' is not a run id; `executor runs` lists them")
        with redis_errors("reading the run"):
            raw = self.redis.hget(run_key(run_id), "info")
        if raw is None:
            raise UserError(
                f"no run {run_id} in the fleet's Redis (runs are kept {RUN_TTL // 86400} days); "
                "`executor runs` lists them"
            )
        try:
            info = RunInfo.from_dict(json.loads(raw))
        except ValueError:
            raise UserError(f"run {run_id}: its record is malformed") from None
        if info.id != run_id:
            raise UserError(f"run {run_id}: its record names another run")
        return info

    def set_info(self, info: RunInfo) -> None:
        with redis_errors("updating the run"):
            self.redis.hset(run_key(info.id), "info", json.dumps(info.to_dict()))
            self.redis.expire(run_key(info.id), RUN_TTL)

    def recent(self, limit: int = 20) -> list[RunInfo]:
        with redis_errors("listing runs"):
            ids = [
                i.decode("utf-8", "replace") for i in self.redis.zrevrange(RUNS_KEY, 0, limit - 1)
            ]
        found = []
        for run_id in filter(is_run_id, ids):  # a Redis writer may add anything there
            try:
                found.append(self.info(run_id))
            except UserError:
                continue  # expired meanwhile, or not ours to read
        return found

    def stages(self, run_id: str) -> dict[str, StageState]:
        with redis_errors("reading the run's stages"):
            raw = self.redis.hgetall(stages_key(run_id))
        return {k.decode("utf-8", "replace"): StageState.from_json(v) for k, v in raw.items()}

    def stage(self, run_id: str, address: str) -> StageState:
        with redis_errors("reading a stage of the run"):
            return StageState.from_json(self.redis.hget(stages_key(run_id), address))

    def template(self, run_id: str, address: str) -> dict[str, Any] | None:
        with redis_errors("reading a stage's template"):
            raw = self.redis.hget(templates_key(run_id), address)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def move(
        self,
        run_id: str,
        address: str,
        states: Iterable[str],
        new: StageState,
        job: str | None = None,
    ) -> bool:
        """Set a stage's record to `new` if its state is one of `states` ("*": any) and,
        given `job`, the record names that job."""
        allowed = ",".join(states)
        with redis_errors("updating a stage of the run"):
            done = self.redis.eval(
                MOVE, 1, stages_key(run_id), address, allowed, new.to_json(), RUN_TTL, job or ""
            )
        return bool(done)

    def bind_job(self, job_id: str, run_id: str, address: str) -> None:
        with redis_errors("naming the job's run"):
            self.redis.set(job_run_key(job_id), f"{run_id}\t{address}", ex=RUN_TTL)

    def job_of(self, job_id: str) -> tuple[str, str] | None:
        """The run and stage a job works for, if it works for a run."""
        with redis_errors("reading the job's run"):
            raw = self.redis.get(job_run_key(job_id))
        if raw is None:
            return None
        run_id, _, address = raw.decode("utf-8", "replace").partition("\t")
        return (run_id, address) if is_run_id(run_id) and address else None
