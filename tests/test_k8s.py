"""The Kubernetes deployment (deploy/k8s), proven without a cluster: each overlay renders with
``kubectl kustomize``; every manifest validates against the Kubernetes API schemas or the vendored
CRD schemas (CloudNativePG, Barman Cloud, prometheus-operator, cert-manager; deploy/schemas)
strictly; every container passes the security policy (our own checks, and checkov's); and the numbers that must agree (grace
periods, stream limits and their alert, images and the published names) do."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from aiapi_shared.nats_permissions import BUCKET_WRITERS, SERVICES, deployment_server_auth

from tests.k8s_render import OVERLAYS, ROOT, all_documents, by_kind, pod_spec, rendered, workloads

K8S_VERSION = "1.33.0"
SCHEMAS = ROOT / "deploy/schemas"
CRD_SCHEMAS = {
    (s["apiVersion"], s["kind"]): SCHEMAS / s["schema"]
    for s in json.loads((SCHEMAS / "SOURCES.json").read_text())
}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE_PREFIX = "ghcr.io/aiapi/aiapi-"
# Third-party images, pinned by version (their digests are the operator's to pin, per registry).
THIRD_PARTY_IMAGES = {"nats:2.11-alpine", "natsio/prometheus-nats-exporter:0.17.3"}


def _id(item: tuple[str, dict[str, Any]]) -> str:
    overlay, doc = item
    return f"{overlay}:{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders(overlay: str) -> None:
    kinds = {d["kind"] for d in rendered(overlay)}
    assert {"StatefulSet", "Deployment", "Job", "NetworkPolicy", "Ingress"} <= kinds
    assert all(
        d["metadata"].get("namespace") == "aiapi"
        for d in rendered(overlay)
        if d["kind"] != "Namespace"
    )


@pytest.mark.parametrize("item", all_documents(), ids=_id)
def test_every_manifest_validates_against_its_schema(item: tuple[str, dict[str, Any]]) -> None:
    _, doc = item
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is None:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    else:
        jsonschema.validate(doc, json.loads(crd.read_text()))


def test_a_typo_fails_the_crd_validation() -> None:
    """The vendored schemas are strict: an unknown field is an error (a misspelt setting would
    otherwise be dropped by the operator without a word)."""
    cluster = dict(by_kind("ha", "Cluster")["aiapi-pg"])
    cluster["spec"] = {**cluster["spec"], "instance": 3}
    schema = json.loads(CRD_SCHEMAS[("postgresql.cnpg.io/v1", "Cluster")].read_text())
    with pytest.raises(jsonschema.ValidationError, match="instance"):
        jsonschema.validate(cluster, schema)


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(overlay: str) -> None:
    for workload in workloads(overlay):
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec.get("automountServiceAccountToken") is False, name  # no API access needed
        for container in _containers(workload):
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["runAsNonRoot"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert set(resources[kind]) >= {"cpu", "memory"}, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_long_running_container_has_probes(overlay: str) -> None:
    for workload in workloads(overlay):
        if workload["kind"] == "Job":
            continue  # a job's containers run to completion: nothing to probe
        for container in _containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container and "readinessProbe" in container, where
            if container["name"] != "exporter":  # the sidecar starts in milliseconds
                assert "startupProbe" in container, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_aiapi_probes_use_the_internal_listener(overlay: str) -> None:
    for workload in workloads(overlay):
        for container in pod_spec(workload)["containers"]:
            if not container["image"].startswith(IMAGE_PREFIX) or workload["kind"] == "Job":
                continue
            assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "internal"}
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "internal"}
            internal = {p["name"]: p["containerPort"] for p in container["ports"]}["internal"]
            assert str(internal) == _config(overlay)["AIAPI_INTERNAL_PORT"]


def _config(overlay: str) -> dict[str, str]:
    (config,) = [d for d in rendered(overlay) if d["metadata"]["name"].startswith("aiapi-config")]
    data: dict[str, str] = config["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_the_published_names_at_the_release_version(overlay: str) -> None:
    for workload in workloads(overlay):
        for container in _containers(workload):
            image = container["image"]
            if image in THIRD_PARTY_IMAGES:
                continue
            service = image.removeprefix(IMAGE_PREFIX).split(":")[0]
            assert image == f"{IMAGE_PREFIX}{service}:{VERSION}", image
            assert service in SERVICES


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_edge_lets_streams_finish_before_it_is_killed(overlay: str) -> None:
    edge = by_kind(overlay, "StatefulSet")["aiapi-edge"]
    spec = pod_spec(edge)
    (container,) = spec["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    needed = (
        pre_stop
        + int(env["AIAPI_EDGE_GRACEFUL_TIMEOUT_S"])
        + float(env["AIAPI_EDGE_SPOOL_DRAIN_S"])
    )
    assert needed < spec["terminationGracePeriodSeconds"] <= needed + 10
    # The spool outlives the pod, a scale-down included.
    assert edge["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    assert {"name": "spool", "mountPath": env["AIAPI_EDGE_SPOOL_DIR"]} in container["volumeMounts"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_usage_alert_follows_the_stream_limit(overlay: str) -> None:
    limit = int(_config(overlay)["AIAPI_NATS_USAGE_MAX_BYTES"])
    rules = by_kind(overlay, "PrometheusRule")["aiapi"]["spec"]["groups"][0]["rules"]
    (rule,) = [r for r in rules if r["alert"] == "AiapiUsageStreamFull"]
    assert rule["expr"].endswith(f"> 0.8 * {limit}")
    documented = {r["alert"] for r in rules}
    operations = (ROOT / "docs/operations.md").read_text()
    for alert in documented:  # every alert has its runbook section
        assert f"#### {alert}" in operations, alert


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_streams_fit_the_nats_store(overlay: str) -> None:
    """nats-server reserves every stream's max_bytes when it creates it: they must fit its
    max_file_store (with the buckets), or the services cannot start."""
    config = _config(overlay)
    streams = sum(
        int(config.get(f"AIAPI_NATS_{name}_MAX_BYTES", 0))
        for name in ("USAGE", "BILLING", "PAYMENTS", "ACCOUNTS")
    )
    buckets = len(BUCKET_WRITERS) * int(config["AIAPI_NATS_KV_MAX_BYTES"])
    conf = next(d for d in rendered(overlay) if d["metadata"]["name"].startswith("nats-config"))
    store = re.search(r"max_file_store: (\d+)G", conf["data"]["nats.conf"])
    assert store is not None
    assert streams + buckets + (256 << 20) < int(store.group(1)) << 30
    assert conf["data"]["auth.conf"] == deployment_server_auth()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_is_closed_but_for_what_is_listed(overlay: str) -> None:
    policies = by_kind(overlay, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    public = policies["public-from-ingress"]["spec"]
    assert public["podSelector"]["matchExpressions"][0]["values"] == ["edge", "accounts"]
    # The Ingress reaches the edge and accounts only; the operator API is on no Service.
    ingress = by_kind(overlay, "Ingress")["aiapi"]["spec"]
    backends = {
        p["backend"]["service"]["name"] for r in ingress["rules"] for p in r["http"]["paths"]
    }
    assert backends == {"edge", "accounts"}
    for service in by_kind(overlay, "Service").values():
        assert all(p["port"] != 8088 for p in service["spec"]["ports"])
    # NATS and PostgreSQL only from their clients.
    nats = policies["nats"]["spec"]["ingress"][0]["from"]
    assert nats == [{"podSelector": {"matchLabels": {"aiapi.dev/nats-client": "true"}}}]
    assert "postgres-clients" in policies
    for workload in workloads(overlay):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        uses_db = any(
            "aiapi-migrations" in str(v)
            or v.get("secret", {})
            .get("secretName", "")
            .endswith(
                ("billing-secrets", "accounts-secrets", "payments-secrets", "migrations-secrets")
            )
            for v in pod_spec(workload).get("volumes", [])
        )
        assert (labels.get("aiapi.dev/postgres-client") == "true") == uses_db, workload["metadata"][
            "name"
        ]


def test_the_ingress_is_safe_for_server_sent_events() -> None:
    for overlay in OVERLAYS:
        annotations = by_kind(overlay, "Ingress")["aiapi"]["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
        assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
        assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "32m"
        assert "cert-manager.io/cluster-issuer" in annotations


def test_ha_runs_everything_three_times_with_backups() -> None:
    config = _config("ha")
    assert config["AIAPI_NATS_REPLICAS"] == "3"
    assert by_kind("ha", "StatefulSet")["nats"]["spec"]["replicas"] == 3
    assert len(config["AIAPI_NATS_URL"].split(",")) == 3
    cluster = by_kind("ha", "Cluster")["aiapi-pg"]["spec"]
    assert cluster["instances"] == 3
    assert cluster["plugins"][0]["isWALArchiver"] is True
    roles = {r["name"] for r in cluster["managed"]["roles"]}
    assert roles == {"aiapi_billing", "aiapi_accounts", "aiapi_payments"}
    assert by_kind("ha", "ScheduledBackup")["aiapi-pg-nightly"]["spec"]["method"] == "plugin"
    for name in ("aiapi-accounts", "aiapi-billing"):
        assert by_kind("ha", "Deployment")[name]["spec"]["replicas"] == 3
    pdbs = by_kind("ha", "PodDisruptionBudget")
    assert {"nats", "aiapi-edge", "aiapi-accounts", "aiapi-billing"} <= set(pdbs)
    assert by_kind("ha", "HorizontalPodAutoscaler")["aiapi-edge"]["spec"]["minReplicas"] == 3


def test_small_is_one_node_with_an_external_database() -> None:
    config = _config("small")
    assert config["AIAPI_NATS_REPLICAS"] == "1"
    assert config["AIAPI_NATS_URL"].count(",") == 0
    assert (
        "cluster {"
        not in next(
            d for d in rendered("small") if d["metadata"]["name"].startswith("nats-config")
        )["data"]["nats.conf"]
    )
    assert "Cluster" not in {d["kind"] for d in rendered("small")}


def test_the_migrations_job_runs_each_service_step_in_its_own_image() -> None:
    job = by_kind("ha", "Job")["aiapi-migrations"]
    steps = _containers(job)
    assert [c["name"] for c in steps] == ["billing", "accounts", "payments"]
    for step in steps:
        assert step["image"] == f"{IMAGE_PREFIX}{step['name']}:{VERSION}"
        assert step["command"][:5] == [
            "python",
            "-m",
            "aiapi_shared.dbadmin",
            "migrate",
            step["name"],
        ]
        assert step["command"][5:] == ["--grant", f"aiapi_{step['name']}"]
    secrets = [v["secret"]["secretName"] for v in pod_spec(job)["volumes"] if "secret" in v]
    assert secrets[0] == "aiapi-migrations-secrets"


def test_the_old_single_file_manifest_is_gone() -> None:
    assert not Path(ROOT / "deploy/k8s/aiapi.yaml").exists()


CHECKOV_VERSION = "3.3.30"


def _checkov() -> Path:
    """checkov from PyPI, installed on first use into .tools/ (it is a tool, not a dependency of
    the workspace: its own environment keeps its many packages out of uv.lock)."""
    target = ROOT / ".tools" / f"checkov-{CHECKOV_VERSION}"
    binary = target / "bin" / "checkov"
    if binary.exists():
        return binary
    uv = ROOT / ".tools/uv/bin/uv"
    for argv in (
        [str(uv), "venv", "-q", str(target), "-p", sys.executable],
        [
            str(uv),
            "pip",
            "install",
            "-q",
            "-p",
            str(target / "bin/python"),
            f"checkov=={CHECKOV_VERSION}",
        ],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            pytest.skip(f"checkov could not be installed from PyPI: {done.stderr[-300:]}")
    return binary


def test_checkov_finds_nothing_but_the_justified_exceptions(tmp_path: Path) -> None:
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(rendered(overlay)))
    done = subprocess.run(
        [
            str(_checkov()),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--quiet",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(done.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"].get("failed_checks", [])]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 500  # it really checked the manifests
    # Every exception is one of the justified ones (annotations in deploy/k8s/base).
    for overlay in OVERLAYS:
        for workload in workloads(overlay):
            skips = {
                k: v
                for k, v in workload["metadata"].get("annotations", {}).items()
                if k.startswith("checkov.io/skip")
            }
            for reason in skips.values():
                check, _, why = reason.partition("=")
                assert check in {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_35"} and len(why) > 30, reason


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_edge_runs_a_worker_per_cpu_of_its_limit(overlay: str) -> None:
    edge = by_kind(overlay, "StatefulSet")["aiapi-edge"]
    (container,) = pod_spec(edge)["containers"]
    workers = next(e for e in container["env"] if e["name"] == "AIAPI_EDGE_WORKERS")
    field = workers["valueFrom"]["resourceFieldRef"]
    assert field == {"containerName": "edge", "resource": "limits.cpu", "divisor": "1"}
    assert float(container["resources"]["limits"]["cpu"]) >= 2  # more than one worker
