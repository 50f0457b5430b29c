"""Fleet mode: `executor submit` (the coordinator side) and what workers share with it.

config    FleetConfig (Redis, store, queue) and connect (a checked Redis client)
keys      Redis key names and lifetimes, the run-cache index, redis_errors
leases    one job at a time per piece of work; others follow it
jobs      following one RQ job: its log, its outcome, cancel, a lost worker
results   what is checked of a result before it is used
workers   the live workers, as `executor workers` lists them
objects   a stage's objects through the fleet's store: inputs put in, outputs fetched home
backend   FleetBackend (the runner's backend for submit): inputs up, jobs out, results home
"""

from executor.errors import FleetError
from executor.fleet.backend import FleetBackend
from executor.fleet.config import FleetConfig, connect
from executor.fleet.keys import RunIndex
from executor.fleet.results import check_result

__all__ = ["FleetBackend", "FleetConfig", "FleetError", "RunIndex", "check_result", "connect"]
