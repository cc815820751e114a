"""``aiapi up`` sizes the edge: a worker per CPU unless ``AIAPI_EDGE_WORKERS`` says otherwise."""

from __future__ import annotations

from pathlib import Path

from aiapi_cli.ports import free_port
from aiapi_cli.stack import StackPlan, plan_stack
from aiapi_cli.supervisor import child_env


def _plan(environ: dict[str, str], tmp_path: Path, cpus: int) -> StackPlan:
    return plan_stack(
        environ,
        nats_url="nats://127.0.0.1:4222",
        database_url="postgresql://postgres:pw@127.0.0.1:5432/aiapi",
        data_dir=tmp_path,
        admin_token="operator-token-" + "x1y2z3" * 4,
        instance_id="up-test",
        pick_port=free_port,
        cpus=cpus,
    )


def _edge_env(plan: StackPlan) -> dict[str, str]:
    edge = next(spec for spec in plan.services if spec.name == "edge")
    return dict(child_env(edge, {}))


def test_the_edge_runs_a_worker_per_cpu_by_default(tmp_path: Path) -> None:
    plan = _plan({}, tmp_path, cpus=6)
    assert plan.edge_workers == 6
    assert _edge_env(plan)["AIAPI_EDGE_WORKERS"] == "6"


def test_the_operator_sets_the_edge_workers(tmp_path: Path) -> None:
    plan = _plan({"AIAPI_EDGE_WORKERS": "3"}, tmp_path, cpus=6)
    assert plan.edge_workers == 3
    assert _edge_env(plan)["AIAPI_EDGE_WORKERS"] == "3"
