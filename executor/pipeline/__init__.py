"""Reading DVC pipelines: dvc.yaml files into stages, params values, and the stage graph.

load_pipeline(root)           every dvc.yaml under root -> Pipeline (validated)
params_values(root, stage)    the `params` block of the stage's dvc.lock entry
ParamsReader(root).values     the same, parsing each params file once across stages
merge_params(entries)         DVC's `_merge_params` rules for a stage's `params` list
build_dag(pipeline)           Dag: order(targets, downstream), upstream, producers
"""

from executor.pipeline.dag import Dag, Producer, build_dag
from executor.pipeline.loader import find_dvcfiles, load_dvcfile, load_pipeline
from executor.pipeline.model import DEFAULT_PARAMS_FILE, OutSpec, ParamSpec, Pipeline, Stage
from executor.pipeline.params import ParamsReader, params_values
from executor.pipeline.paramspecs import _merge_params, merge_params

__all__ = [
    "DEFAULT_PARAMS_FILE",
    "Dag",
    "OutSpec",
    "ParamSpec",
    "ParamsReader",
    "Pipeline",
    "Producer",
    "Stage",
    "_merge_params",
    "build_dag",
    "find_dvcfiles",
    "load_dvcfile",
    "load_pipeline",
    "merge_params",
    "params_values",
]
