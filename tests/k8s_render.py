"""The Kubernetes manifests as an operator applies them: each overlay rendered by
``kubectl kustomize`` (the deploy tests share this)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiapi_testkit.apt import ensure_package

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ("small", "ha")


def kustomize_command() -> list[str] | None:
    """kubectl's built-in kustomize (installed from Debian when missing and root, as CI is),
    else a standalone kustomize; None when neither can be had."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    try:
        return [str(ensure_package(Path("/usr/bin/kubectl"), "kubectl")), "kustomize"]
    except RuntimeError:
        return None


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kubectl nor kustomize is installed (apt-get install kubectl)")
    done = subprocess.run(
        [*command, str(ROOT / "deploy/k8s/overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def all_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(overlay, doc) for overlay in OVERLAYS for doc in rendered(overlay)]


def workloads(overlay: str) -> list[dict[str, Any]]:
    return [d for d in rendered(overlay) if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def by_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(overlay) if d["kind"] == kind}
