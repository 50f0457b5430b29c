"""Every error executor raises on purpose.

    ExecutorError                    base; str(e) is a one-line message a user can act on  1
    ├── UserError                    the input is wrong; fixing the input fixes it (final)  2
    │   ├── PipelineError            dvc.yaml / params / templating / DAG problems
    │   ├── ConfigError              settings, image names, limits
    │   ├── InvalidJobSpec           a job spec that does not validate (a worker refuses it)
    │   │   └── RefusedJob           a job that is no stage job (another function, callbacks)
    │   └── WorkspaceError           paths escaping the repository, missing deps
    │       └── UnsavedChanges       a checkout would lose files that are in no cache
    ├── StageFailed                  the stage's own command exited non-zero (final)
    │   ├── OutputMissing            ... but did not create one of its outputs
    │   └── StageOverstepped         ... or wrote a file no stage may write
    ├── StageCancelled               Ctrl-C / cancel reached the stage
    ├── StageTimedOut                the stage ran past its deadline
    ├── StageOutOfMemory             the container was OOM-killed
    └── InfrastructureError          Docker, storage, network: may be retried               3
        ├── SandboxError             the Docker engine or an image
        ├── StoreError               the object store (local folder or S3)
        │   ├── CorruptObject        an object's content does not match its md5
        │   ├── ObjectMissing        the store does not have an object
        │   ├── StoreAccessDenied    403, bad or missing credentials (final)
        │   ├── StoreNotFound        the bucket or folder does not exist (final)
        │   ├── StoreUnreachable     the endpoint did not answer, after retries
        │   └── TransferIncomplete   push/pull moved what it could; some objects failed
        ├── FleetError               Redis or the queue could not be used
        ├── RemoteInfrastructureError  a worker met an infrastructure problem
        └── RemoteError              a job failed on a worker, or its result is unusable
            ├── JobVanished          a job's record left Redis while it was followed
            └── JobLost              a running job's heartbeat stopped
                └── JobHandedOver    its worker was stopped; another one runs it

The number after a branch is the exit status (`exit_status`) of every error below it: the
CLI, the transfer commands and the worker all exit with it (130 for Ctrl-C is not an
error). A job's failure crosses to its coordinator as its class's wire form (`wire_kind`,
`wire_fields`, `from_wire`), beside each class in its branch's module.

Raise where the cause is known; catch in the CLI and in the worker's job entry.

Each branch lives in its own module (`base`, `user`, `stage`, `infrastructure`); this
package is the tree's one import path: `from executor.errors import X`.
"""

from executor.errors.base import WIRE_KINDS, ExecutorError
from executor.errors.infrastructure import (
    CorruptObject,
    FleetError,
    InfrastructureError,
    JobHandedOver,
    JobLost,
    JobVanished,
    ObjectMissing,
    RemoteError,
    RemoteInfrastructureError,
    SandboxError,
    StoreAccessDenied,
    StoreError,
    StoreNotFound,
    StoreUnreachable,
    TransferIncomplete,
)
from executor.errors.stage import (
    OutputMissing,
    StageCancelled,
    StageFailed,
    StageOutOfMemory,
    StageOverstepped,
    StageTimedOut,
)
from executor.errors.user import (
    ConfigError,
    InvalidJobSpec,
    PipelineError,
    RefusedJob,
    UnsavedChanges,
    UserError,
    WorkspaceError,
    os_error,
)

__all__ = [
    "WIRE_KINDS",
    "ConfigError",
    "CorruptObject",
    "ExecutorError",
    "FleetError",
    "InfrastructureError",
    "InvalidJobSpec",
    "JobHandedOver",
    "JobLost",
    "JobVanished",
    "ObjectMissing",
    "OutputMissing",
    "PipelineError",
    "RefusedJob",
    "RemoteError",
    "RemoteInfrastructureError",
    "SandboxError",
    "StageCancelled",
    "StageFailed",
    "StageOutOfMemory",
    "StageOverstepped",
    "StageTimedOut",
    "StoreAccessDenied",
    "StoreError",
    "StoreNotFound",
    "StoreUnreachable",
    "TransferIncomplete",
    "UnsavedChanges",
    "UserError",
    "WorkspaceError",
    "os_error",
]
