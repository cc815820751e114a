"""Vendor the CRD schemas the manifests are validated against, offline (tests/test_k8s.py).

    python deploy/schemas/vendor_crds.py MIRRORS_DIR

``MIRRORS_DIR`` holds bare clones named ``<owner>+<name>/repo`` (the projects' own repositories;
any clone works). For each CRD below, the YAML at the pinned tag is read with ``git show``, each
served version's ``openAPIV3Schema`` is turned into a JSON Schema (strict: an unknown field is an
error, as ``kubeconform -strict`` does; ``x-kubernetes-*`` extensions mapped to what they mean),
and written to ``deploy/schemas/crds/<group>/<kind>_<version>.json``; ``SOURCES.json`` records
repository, tag, commit and path of each.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

# (repository, tag, path of the CRD in it)
CRDS: tuple[tuple[str, str, str], ...] = (
    (
        "cloudnative-pg/cloudnative-pg",
        "v1.30.0",
        "config/crd/bases/postgresql.cnpg.io_clusters.yaml",
    ),
    (
        "cloudnative-pg/cloudnative-pg",
        "v1.30.0",
        "config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml",
    ),
    (
        "cloudnative-pg/plugin-barman-cloud",
        "v0.14.0",
        "config/crd/bases/barmancloud.cnpg.io_objectstores.yaml",
    ),
    (
        "prometheus-operator/prometheus-operator",
        "v0.93.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ),
    (
        "prometheus-operator/prometheus-operator",
        "v0.93.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
    ("cert-manager/cert-manager", "v1.21.1", "deploy/crds/cert-manager.io_certificates.yaml"),
    ("cert-manager/cert-manager", "v1.21.1", "deploy/crds/cert-manager.io_issuers.yaml"),
)


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 (Kubernetes structural) schema as JSON Schema draft 7, strict."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key.startswith("x-kubernetes-") or key in ("nullable", "format"):
            continue  # handled below; formats are not checked offline
        elif key == "pattern":
            out[key] = _python_pattern(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _python_pattern(pattern: str) -> str:
    """Go's RE2 takes inline flags anywhere (``^(?i)...``); Python only at the start."""
    for flags in ("(?i)",):
        if pattern.startswith("^" + flags):
            pattern = flags + "^" + pattern[len("^" + flags) :]
    re.compile(pattern)  # any other difference: fail here, not in the tests
    return pattern


def _commit(repo_dir: Path, tag: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo_dir), "rev-parse", f"{tag}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def vendor(mirrors: Path) -> list[dict[str, str]]:
    sources = []
    for repository, tag, path in CRDS:
        repo_dir = mirrors / repository.replace("/", "+") / "repo"
        text = subprocess.run(
            ["git", "-C", str(repo_dir), "show", f"{tag}:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        crd = next(
            d for d in yaml.safe_load_all(text) if d and d.get("kind") == "CustomResourceDefinition"
        )
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = to_json_schema(version["schema"]["openAPIV3Schema"])
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            target = HERE / "crds" / group / f"{kind.lower()}_{version['name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
            sources.append(
                {
                    "apiVersion": f"{group}/{version['name']}",
                    "kind": kind,
                    "schema": str(target.relative_to(HERE)),
                    "repository": f"https://github.com/{repository}",
                    "tag": tag,
                    "commit": _commit(repo_dir, tag),
                    "path": path,
                }
            )
    (HERE / "SOURCES.json").write_text(json.dumps(sources, indent=1) + "\n")
    return sources


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for source in vendor(Path(sys.argv[1])):
        print(source["apiVersion"], source["kind"], "->", source["schema"])
