"""`executor-worker`: an RQ worker whose jobs each run one stage (worker.fleetjob), on this
host's Docker engine, for the fleet's Redis and store."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from executor.errors import ExecutorError
from executor.fleet.config import connect
from executor.fleet.keys import DEFAULT_QUEUE
from executor.settings import Settings
from executor.terminal import shown
from worker import config as worker_config_module
from worker import engines
from worker.config import WorkerConfig
from worker.gpurouting import check_gpu_queue
from worker.jobdirs import claim_home, remove_stale_workspaces
from worker.lostjobs import SWEEP_EVERY
from worker.rqjobs import stage_job_class, stage_worker_class
from worker.sandbox import owner
from worker.sandbox.engine import DockerSandbox, owner_alive, reap
from worker.sandbox.hostpaths import check_host_paths, engine_container, host_paths
from worker.stores import store_for


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis", "redis_url", envvar="EXECUTOR_REDIS_URL", required=True,
              help="The fleet's Redis, e.g. redis://host:6379/0 (EXECUTOR_REDIS_URL).")  # fmt: skip
@click.option("--store", "store_url", envvar="EXECUTOR_STORE", required=True,
              help="The fleet's store, e.g. s3://bucket/prefix (EXECUTOR_STORE).")  # fmt: skip
@click.option("--queue", "queues", multiple=True, default=[DEFAULT_QUEUE], show_default=True,
              help="Queues to take jobs from, in order of priority (repeatable).")  # fmt: skip
@click.option("--dir", "home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The local cache and workspaces (EXECUTOR_WORKER_DIR).")  # fmt: skip
@click.option("--cache-size", default=None, help="Local cache limit, e.g. 50g (default 10g).")
@click.option("--max-memory", default=None,
              help="Most memory a job may ask for, e.g. 16g; also the limit of a job that "
                   "names none (EXECUTOR_WORKER_MAX_MEMORY; default: none).")  # fmt: skip
@click.option("--max-cpus", default=None,
              help="Most CPUs a job may ask for; also the limit of a job that names none "
                   "(EXECUTOR_WORKER_MAX_CPUS; default: none).")  # fmt: skip
@click.option(
    "--max-pids",
    default=None,
    help="Most processes a job may ask for (EXECUTOR_WORKER_MAX_PIDS; default 4096).",
)
@click.option(
    "--max-timeout",
    default=None,
    help="Longest timeout a job may ask for (EXECUTOR_WORKER_MAX_TIMEOUT; default 168h).",
)
@click.option("--default-timeout", default=None,
              help="Timeout of a job that names none (EXECUTOR_WORKER_DEFAULT_TIMEOUT; "
                   "default 24h).")  # fmt: skip
@click.option(
    "--allow-network",
    is_flag=True,
    default=None,
    help="Let jobs ask for network: true (EXECUTOR_WORKER_ALLOW_NETWORK; default no).",
)
@click.option("--gpus", default=None,
              help="The GPUs this worker has: a count, all, or device=0,1 (EXECUTOR_WORKER_GPUS; "
                   "default none). Jobs asking for more are refused; a worker without GPUs "
                   "moves GPU jobs to the GPU queue.")  # fmt: skip
@click.option("--allow-gpus", is_flag=True, default=None, hidden=True,
              help="Before --gpus: the same as --gpus all.")  # fmt: skip
@click.option(
    "--tmp-size",
    default=None,
    help="Size of a stage's /tmp (EXECUTOR_WORKER_TMP_SIZE; default 1g).",
)
@click.option("--log-bytes", default=None,
              help="Bytes of a job's log relayed through Redis (EXECUTOR_WORKER_LOG_BYTES; "
                   "default 1048576); the rest is cut, the stage runs on.")  # fmt: skip
@click.option("--store-patience", default=None,
              help="Seconds a job waits for an unreachable store before it fails "
                   "(EXECUTOR_WORKER_STORE_PATIENCE; default 120).")  # fmt: skip
@click.option("--drain-grace", default=None,
              help="Seconds a running stage may go on after SIGTERM before it is stopped "
                   "and handed to another worker (EXECUTOR_WORKER_DRAIN_GRACE; "
                   "default 60).")  # fmt: skip
@click.option("--shared-dir", is_flag=True, default=None,
              help="--dir is shared by several workers (replicas given one volume): each "
                   "takes a free slot folder in it (EXECUTOR_WORKER_SHARED_DIR).")  # fmt: skip
@click.option("--host-dir", default=None,
              help="Where the Docker engine's host sees --dir, for a worker in a container "
                   "(EXECUTOR_WORKER_HOST_DIR; default: found from the container's mounts). "
                   "Checked at start.")  # fmt: skip
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
def main(
    redis_url: str,
    store_url: str,
    queues: tuple[str, ...],
    home: Path | None,
    cache_size: str | None,
    burst: bool,
    **settings: Any,
) -> None:
    """Take stage jobs from the fleet's queues and run them in containers on this host."""
    from rq.serializers import JSONSerializer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = {**os.environ, "EXECUTOR_STORE": store_url}  # flags over the environment
    if home is not None:
        env["EXECUTOR_WORKER_DIR"] = str(home.resolve())
    if cache_size is not None:
        env["EXECUTOR_WORKER_CACHE_SIZE"] = cache_size
    for name, value in settings.items():
        if value is not None and value is not False:
            env["EXECUTOR_WORKER_" + name.upper()] = "1" if value is True else str(value)
    try:
        config = WorkerConfig.from_env(env)
        check_gpu_queue(queues, config)
        root = config.home
        config = replace(config, home=claim_home(root, shared=config.shared_home))
        worker_config_module.use(config)
        redis = connect(redis_url)
        sandbox = DockerSandbox.from_env(config.env)
        owner.adopt(engine_container(sandbox.client, config.env))
        sandbox.host_paths = host_paths(sandbox.client, root, config.env)
        check_host_paths(sandbox.client, config.home, sandbox.host_paths, config.env)
        # Containers of a worker on this host that was killed: nothing else removes them.
        reap(sandbox.client, is_alive=owner_alive(sandbox.client))
        sandbox.close()
        engines.keep(sandbox)  # one client for every job (see worker.engines)
        remove_stale_workspaces(config.home)
        store = store_for(store_url, Settings.from_env(config.env))
        getattr(store, "client", None)  # S3: the client made now, once, before any fork
    except ExecutorError as exc:
        click.echo(f"ERROR: {shown(str(exc))}", err=True)
        sys.exit(exc.exit_status)
    worker = stage_worker_class()(
        list(queues),
        connection=redis,
        serializer=JSONSerializer,
        job_class=stage_job_class(),
        maintenance_interval=SWEEP_EVERY,
        worker_ttl=SWEEP_EVERY + 15,  # an idle worker wakes (dequeue timeout) for each pass
    )
    worker.work(burst=burst, logging_level="INFO")
