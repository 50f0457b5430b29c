"""From a pipeline to landed results, shared by `executor run` and `executor submit`.

plan       per stage, what changed since dvc.lock and the run-cache key (keys before bytes)
runner     the decisions per stage (skip, restore, look up, run) and landing their results
schedule   the loop that starts stages as their upstream settles, warms containers ahead
outputs    outputs checked out, committed, removed and protected as DVC does
inputs     a stage's inputs by content, as a worker gets them (and its layout digest)

Only the backend differs: worker.local's LocalBackend runs here, executor.fleet's
FleetBackend sends a job to the fleet.
"""
