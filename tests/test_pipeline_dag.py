"""The stage graph: edges, order, targets, and the errors DVC raises for bad graphs."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.errors import PipelineError
from executor.pipeline import Pipeline, Stage, build_dag, load_pipeline
from executor.pipeline.model import OutSpec, ParamSpec
from tests.test_pipeline_oracle import dvc_repo, write

DVC_YAML = """\
stages:
  report:
    cmd: echo report
    deps: [models, metrics/eval.json]
    outs: [report.html]
  prepare:
    cmd: echo prepare
    deps: [data/raw.csv]
    outs: [data/prepared]
  train:
    foreach: [a, b]
    do:
      cmd: echo ${item}
      deps: ["data/prepared/${item}.csv"]
      outs: ["models/${item}.pkl"]
  evaluate:
    cmd: echo evaluate
    deps: [models/a.pkl]
    params: [{config/eval.yaml: [k]}]
    metrics: [{metrics/eval.json: {cache: false}}]
  frozen_eval:
    cmd: echo frozen
    frozen: true
    deps: [models/b.pkl]
    outs: [frozen.txt]
  lonely:
    cmd: echo lonely
"""

SUB_YAML = """\
stages:
  config:
    cmd: echo config
    wdir: ..
    outs: [config/eval.yaml]
  after_frozen:
    cmd: echo after
    deps: [../frozen.txt]
"""


@pytest.fixture()
def pipeline(tmp_path: Path) -> Pipeline:
    write(tmp_path, {"dvc.yaml": DVC_YAML, "sub/dvc.yaml": SUB_YAML})
    return load_pipeline(tmp_path)


def _names(stages: list[Stage]) -> list[str]:
    return [stage.address for stage in stages]


def test_order_is_dvc_repro_order(pipeline: Pipeline) -> None:
    """DVC's plan_repro: depth-first post-order over stages in definition order, following
    deps in order (checked against `plan_repro(get_active_graph(index.graph))` of DVC 3.67)."""
    dag = build_dag(pipeline)
    assert _names(dag.order()) == [
        "prepare",
        "train@a",
        "train@b",
        "sub/dvc.yaml:config",
        "evaluate",
        "report",
        "frozen_eval",
        "lonely",
        "sub/dvc.yaml:after_frozen",
    ]
    position = {address: index for index, address in enumerate(_names(dag.order()))}
    for stage in pipeline.stages.values():
        assert all(position[up.address] < position[stage.address] for up in dag.upstream(stage))


def test_edges_cover_equal_inside_and_containing_paths(pipeline: Pipeline) -> None:
    dag = build_dag(pipeline)
    stages = pipeline.stages
    assert _names(dag.upstream(stages["train@a"])) == ["prepare"]  # dep inside an output dir
    assert _names(dag.upstream(stages["report"])) == ["train@a", "train@b", "evaluate"]
    assert _names(dag.upstream(stages["evaluate"])) == ["train@a", "sub/dvc.yaml:config"]
    assert _names(dag.downstream_of(stages["train@a"])) == ["report", "evaluate"]
    assert dag.upstream(stages["lonely"]) == [] and dag.downstream_of(stages["lonely"]) == []
    producers = dag.dep_producers(stages["report"], "models")
    assert [(p.stage.name, p.out.path, p.path) for p in producers] == [
        ("train@a", "models/a.pkl", "models/a.pkl"),
        ("train@b", "models/b.pkl", "models/b.pkl"),
    ]
    assert [p.stage.name for p in dag.producers("data/prepared/x/y.csv")] == ["prepare"]
    assert dag.producer_of_out("./metrics/eval.json") == (
        stages["evaluate"],
        stages["evaluate"].outs[0],
    )
    assert dag.producer_of_out("models") is None


@pytest.mark.parametrize(
    ("targets", "downstream", "expected"),
    [
        (
            ["report"],
            False,
            ["prepare", "train@a", "train@b", "sub/dvc.yaml:config", "evaluate", "report"],
        ),
        (["train"], False, ["prepare", "train@a", "train@b"]),
        (["train@b"], False, ["prepare", "train@b"]),
        (["dvc.yaml:train@b"], False, ["prepare", "train@b"]),
        (["sub/dvc.yaml:config"], False, ["sub/dvc.yaml:config"]),
        (
            ["sub/dvc.yaml"],
            False,
            ["frozen_eval", "sub/dvc.yaml:config", "sub/dvc.yaml:after_frozen"],
        ),
        (["frozen_eval"], False, ["frozen_eval"]),
        (["sub/dvc.yaml:after_frozen"], False, ["frozen_eval", "sub/dvc.yaml:after_frozen"]),
        (["train@b"], True, ["train@b", "report"]),
        (["prepare"], True, ["prepare", "train@a", "train@b", "evaluate", "report"]),
        (
            ["sub/dvc.yaml:config", "lonely"],
            True,
            # DVC walks a small subgraph in set order (hash-seeded); ours is definition order.
            ["sub/dvc.yaml:config", "evaluate", "report", "lonely"],
        ),
    ],
)
def test_targets(
    pipeline: Pipeline, targets: list[str], downstream: bool, expected: list[str]
) -> None:
    assert _names(build_dag(pipeline).order(targets, downstream=downstream)) == expected


def test_unknown_target_lists_close_names(pipeline: Pipeline) -> None:
    with pytest.raises(PipelineError) as caught:
        build_dag(pipeline).order(["trian"])
    assert str(caught.value).startswith("unknown stage 'trian'; did you mean")
    assert "'train'" in str(caught.value)
    with pytest.raises(PipelineError, match=r"unknown stage 'sub/dvc.yaml:nope'"):
        build_dag(pipeline).order(["sub/dvc.yaml:nope"])


def _stage(
    name: str, deps: tuple[str, ...] = (), outs: tuple[str, ...] = (), **kw: object
) -> Stage:
    return Stage(
        name=name,
        dvcfile=str(kw.pop("dvcfile", "dvc.yaml")),
        cmd="true",
        deps=deps,
        outs=tuple(OutSpec(path) for path in outs),
        **kw,  # type: ignore[arg-type]
    )


def _dag_of(*stages: Stage) -> None:
    build_dag(Pipeline(root="/r", stages={stage.address: stage for stage in stages}))


def test_cycle_names_its_stages() -> None:
    with pytest.raises(PipelineError, match=r"cycle involving stages .*'a'.*'b'|'b'.*'a'"):
        _dag_of(_stage("a", ("y",), ("x",)), _stage("b", ("x",), ("y",)), _stage("c", ("x",)))


def test_own_output_as_dependency_is_a_cycle() -> None:
    with pytest.raises(PipelineError, match="cycle involving stages 'a'"):
        _dag_of(_stage("a", ("data",), ("data/x",)))


def test_params_files_count_as_dependencies() -> None:
    writer = _stage("writer", outs=("conf/p.yaml",))
    reader = _stage("reader", params=(ParamSpec("p.yaml", ("k",)),), wdir="conf")
    dag = build_dag(Pipeline(root="/r", stages={"reader": reader, "writer": writer}))
    assert _names(dag.order()) == ["writer", "reader"]


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ("x.txt", "x.txt", "output 'x.txt' is specified in stages 'a' and 'b'"),
        ("./x.txt", "x.txt", "output 'x.txt' is specified in stages 'a' and 'b'"),
        ("data", "data/x", "output 'data/x' of stage 'b' is inside output 'data' of stage 'a'"),
        ("data/x", "data", "output 'data/x' of stage 'a' is inside output 'data' of stage 'b'"),
    ],
)
def test_clashing_outputs_name_both_stages(first: str, second: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        _dag_of(_stage("a", outs=(first,)), _stage("b", outs=(second,)))


def test_same_output_twice_in_one_stage(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": "stages:\n  a:\n    cmd: x\n    outs: [m]\n    metrics: [m]\n"})
    with pytest.raises(PipelineError, match="output 'm' is specified twice in stage 'a'"):
        load_pipeline(tmp_path)


def test_dvc_agrees_on_graph_errors(tmp_path: Path) -> None:
    from dvc.repo import Repo

    cases = {
        "cycle": "stages:\n  a: {cmd: x, deps: [y], outs: [x]}\n  b: {cmd: x, deps: [x], outs: [y]}\n",
        "self": "stages:\n  a: {cmd: x, deps: [d], outs: [d/x]}\n",
        "dup": "stages:\n  a: {cmd: x, outs: [o]}\n  b: {cmd: x, outs: [o]}\n",
        "overlap": "stages:\n  a: {cmd: x, outs: [o]}\n  b: {cmd: x, outs: [o/p]}\n",
    }
    for case, text in cases.items():
        root = dvc_repo(tmp_path / case, {"dvc.yaml": text})
        with Repo(str(root)) as repo, pytest.raises(Exception):  # noqa: B017
            _ = repo.index.graph
        with pytest.raises(PipelineError):
            load_pipeline(root)


def test_dvc_agrees_on_edges(tmp_path: Path) -> None:
    from dvc.repo import Repo

    root = dvc_repo(tmp_path, {"dvc.yaml": DVC_YAML, "sub/dvc.yaml": SUB_YAML})
    dag = build_dag(load_pipeline(root))
    with Repo(str(root)) as repo:
        graph = repo.index.graph
        for stage in repo.index.stages:
            dvcfile = Path(stage.path).relative_to(root).as_posix()
            address = stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"
            theirs = set()
            for dep_stage in graph.successors(stage):
                rel = Path(dep_stage.path).relative_to(root).as_posix()
                theirs.add(dep_stage.name if rel == "dvc.yaml" else f"{rel}:{dep_stage.name}")
            assert set(_names(dag.upstream(dag.stages[address]))) == theirs


def test_thousand_stages_with_many_deps_order_upstream_first() -> None:
    stages = {}
    for index in range(1000):
        deps = tuple(f"data/d{index - step}/part.csv" for step in range(1, 21) if index >= step)
        stage = _stage(f"s{index}", deps=(*deps, "src/lib", "shared/big"), outs=(f"data/d{index}",))
        stages[stage.address] = stage
    pipeline = Pipeline(root="/r", stages=stages)
    dag = build_dag(pipeline)
    order = dag.order(["s999"])
    assert len(order) == 1000 and order[0].name == "s0" and order[-1].name == "s999"
    assert all(dag.upstream(stage) for stage in order[1:])
