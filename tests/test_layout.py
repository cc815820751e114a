"""The architecture rules hold in this workspace, and the checker really catches a violation."""

from __future__ import annotations

import tomllib
from pathlib import Path

from aiapi_testkit.layout import (
    check_layout,
    check_nats_adapter,
    check_purity,
    check_sql_placement,
)

ROOT = Path(__file__).resolve().parents[1]


def test_no_service_imports_another_and_the_edge_imports_no_chain_library() -> None:
    assert [str(v) for v in check_layout(ROOT)] == []


def test_no_pure_module_reaches_an_io_library() -> None:
    assert [str(v) for v in check_purity(ROOT)] == []


def test_statements_run_only_in_repository_modules() -> None:
    assert [str(v) for v in check_sql_placement(ROOT)] == []


def test_only_the_nats_adapter_imports_nats() -> None:
    assert [str(v) for v in check_nats_adapter(ROOT)] == []


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


PURE = {"billing": ("rules", "rates")}


def test_a_pure_module_importing_an_io_library_is_caught(tmp_path: Path) -> None:
    root = _fake_workspace(
        tmp_path,
        {
            "services/billing/src/aiapi_billing/rules.py": "import os\nimport httpx\n",
            "services/billing/src/aiapi_billing/rates.py": "from psycopg.errors import Error\n",
        },
    )
    found = sorted((v.path.name, v.line, v.imported) for v in check_purity(root, PURE))
    assert found == [("rates.py", 1, "psycopg.errors"), ("rules.py", 2, "httpx")]


def test_a_pure_module_reaching_io_through_the_workspace_is_caught(tmp_path: Path) -> None:
    root = _fake_workspace(
        tmp_path,
        {
            # through the service's own modules (``from pkg import module``, then a relative import)
            "services/billing/src/aiapi_billing/__init__.py": "",
            "services/billing/src/aiapi_billing/rules.py": "from aiapi_billing import store\n",
            "services/billing/src/aiapi_billing/store.py": "from .repository import lock\n",
            "services/billing/src/aiapi_billing/repository.py": "import psycopg\nlock = 1\n",
            # through shared's NATS module
            "services/billing/src/aiapi_billing/rates.py": "from aiapi_shared.bus import Bus\n",
            "shared/src/aiapi_shared/__init__.py": "",
            "shared/src/aiapi_shared/bus.py": "import nats\n",
        },
    )
    assert sorted(str(v).split("/")[-1] for v in check_purity(root, PURE)) == [
        "rates.py:1 imports aiapi_shared.bus (reaches nats)",
        "rules.py:1 imports aiapi_billing.store (reaches psycopg via aiapi_billing.repository)",
    ]


def test_pure_modules_may_import_each_other_and_a_pure_shared_module(tmp_path: Path) -> None:
    root = _fake_workspace(
        tmp_path,
        {
            "services/billing/src/aiapi_billing/rules.py": "from aiapi_billing.rates import X\n",
            "services/billing/src/aiapi_billing/rates.py": "from aiapi_shared.money import Y\n",
            "shared/src/aiapi_shared/money.py": "import decimal\nfrom . import errors\n",
            "shared/src/aiapi_shared/errors.py": "class E(Exception): ...\n",
        },
    )
    assert check_purity(root, PURE) == []


def test_a_pure_module_listed_but_missing_is_reported(tmp_path: Path) -> None:
    root = _fake_workspace(tmp_path, {"services/billing/src/aiapi_billing/rules.py": ""})
    assert [(v.path.name, v.reason) for v in check_purity(root, PURE)] == [
        ("rates.py", "listed as pure, but not found")
    ]


def test_a_statement_outside_the_repository_is_caught(tmp_path: Path) -> None:
    root = _fake_workspace(
        tmp_path,
        {
            "services/billing/src/aiapi_billing/repository/holds.py": "c.execute('SELECT 1')\n",
            "services/accounts/src/aiapi_accounts/repository.py": "c.execute('SELECT 1')\n",
            "services/billing/src/aiapi_billing/settlement.py": "x = 1\nawait c.execute('x')\n",
            "services/payments/src/aiapi_payments/api.py": "c.executemany('x', [])\n",
            "services/edge/src/aiapi_edge/spool.py": "db.executemany('x', [])\n",  # SQLite
        },
    )
    found = sorted((v.path.name, v.line) for v in check_sql_placement(root))
    assert found == [("api.py", 1), ("settlement.py", 2)]


def test_an_import_of_nats_outside_the_adapter_is_caught(tmp_path: Path) -> None:
    root = _fake_workspace(
        tmp_path,
        {
            "shared/src/aiapi_shared/bus.py": "import nats\nfrom nats.js.kv import KeyValue\n",
            "shared/src/aiapi_shared/kv.py": "from nats.js.errors import KeyNotFoundError\n",
            "services/billing/src/aiapi_billing/consumers.py": "from nats.aio.msg import Msg\n",
            "services/accounts/src/aiapi_accounts/ok.py": "from aiapi_shared.bus import Msg\n",
            "tooling/cli/src/aiapi_cli/tool.py": "import os\nimport nats.js\n",
            "tests/shared/test_bus.py": "from nats.aio.msg import Msg\n",
            "tests/billing/test_x.py": "import natsort\nfrom nats.errors import TimeoutError\n",
        },
    )
    found = sorted(
        (str(v.path.relative_to(root)), v.line, v.imported) for v in check_nats_adapter(root)
    )
    assert found == [
        ("services/billing/src/aiapi_billing/consumers.py", 1, "nats.aio.msg"),
        ("shared/src/aiapi_shared/kv.py", 1, "nats.js.errors"),
        ("tests/billing/test_x.py", 2, "nats.errors"),
        ("tooling/cli/src/aiapi_cli/tool.py", 2, "nats.js"),
    ]
