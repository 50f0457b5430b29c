"""From a pipeline to landed results, shared by `executor run` and `executor submit`.

types      the Backend protocol, RunOptions, RunSummary, Launch
plan       per stage, what changed since dvc.lock and the run-cache key (keys before bytes)
decide     skip, check out, look up, run or verify, as `dvc repro` decides
runner     acting on those decisions per stage and landing the results, here or from a backend
schedule   the loop that starts stages as their upstream settles, warms containers ahead
lockqueue  dvc.lock entries buffered and written in plan order
preflight  what is checked before anything changes; data sources verified first
specs      a stage as a job spec: image, environment, layout
outputs    outputs checked out, committed, removed and protected as DVC does
inputs     a stage's inputs by content, as a worker gets them (and its layout digest)

Only the backend differs: worker.local's LocalBackend runs here, executor.fleet's
FleetBackend sends a job to the fleet.
"""
