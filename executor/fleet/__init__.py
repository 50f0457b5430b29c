"""Fleet mode: `executor submit` (the coordinator side) and what workers share with it.

keys      Redis key names and lifetimes, the run-cache index, redis_errors
jobs      following one RQ job: its log, its outcome, cancel, a lost worker
backend   FleetBackend (the runner's backend for submit), FleetConfig, connect
"""

from executor.errors import FleetError
from executor.fleet.backend import FleetBackend, FleetConfig, check_result, connect
from executor.fleet.keys import RunIndex

__all__ = ["FleetBackend", "FleetConfig", "FleetError", "RunIndex", "check_result", "connect"]
