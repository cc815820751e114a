"""The architecture rules hold in this workspace, and the checker really catches a violation."""

from __future__ import annotations

import tomllib
from pathlib import Path

from aiapi_testkit.layout import check_layout

ROOT = Path(__file__).resolve().parents[1]


def test_no_service_imports_another_and_the_edge_imports_no_chain_library() -> None:
    assert [str(v) for v in check_layout(ROOT)] == []


def _fake_workspace(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_service_importing_another_is_caught(tmp_path: Path) -> None:
    root = _fake_workspace(
        tmp_path,
        {
            "services/edge/src/aiapi_edge/ok.py": "from aiapi_shared.money import format_usd\n",
            "services/edge/src/aiapi_edge/bad.py": "import os\nfrom aiapi_billing.ledger import x\n",
            "services/billing/src/aiapi_billing/bad.py": "import aiapi_accounts.keys\n",
        },
    )
    found = sorted((v.path.name, v.line, v.imported) for v in check_layout(root))
    assert found == [("bad.py", 1, "aiapi_accounts.keys"), ("bad.py", 2, "aiapi_billing.ledger")]


def test_the_edge_importing_web3_is_caught(tmp_path: Path) -> None:
    root = _fake_workspace(
        tmp_path, {"services/edge/src/aiapi_edge/chain.py": "from web3 import Web3\n"}
    )
    assert [v.imported for v in check_layout(root)] == ["web3"]


def test_shared_importing_a_service_is_caught(tmp_path: Path) -> None:
    root = _fake_workspace(
        tmp_path, {"shared/src/aiapi_shared/x.py": "from aiapi_edge import app\n"}
    )
    assert [v.imported for v in check_layout(root)] == ["aiapi_edge"]


def test_each_service_declares_no_other_service_and_the_edge_no_web3() -> None:
    for name in ("edge", "billing", "payments", "accounts", "simulator"):
        project = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text())
        deps = " ".join(project["project"]["dependencies"])
        others = [f"aiapi-{o}" for o in ("edge", "billing", "payments", "accounts") if o != name]
        assert not any(other in deps for other in others), name
    edge = tomllib.loads((ROOT / "services/edge/pyproject.toml").read_text())
    assert not any("web3" in dep for dep in edge["project"]["dependencies"])
