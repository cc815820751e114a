"""The workspace's architecture rules, checked by reading source files (no imports executed).

* A service never imports another service (``aiapi_edge`` may not import ``aiapi_billing``);
  services talk through events, request/reply and KV only.
* ``shared`` imports no service.
* The edge never imports chain libraries (``web3``, ``eth_*``, ``coincurve``): it must stay small.
* A pure module (``PURE_MODULES``: pricing, rules, policies, translations) reaches no I/O
  library (``IO_LIBRARIES``: database, NATS, HTTP, sockets), neither directly nor through any
  workspace module it imports: it is handed data, never a handle, so it is tested without I/O.
* In the services that own a PostgreSQL schema, statements run only in repository modules
  (``repository.py`` or a ``repository/`` package), on the connection their caller hands them.
* Only the NATS adapter (``aiapi_shared/bus.py``) imports ``nats``: every other module, in
  ``shared``, the services, the tooling and the tests, uses what the adapter exports (``Bus``,
  ``Msg``, ``KeyValue``, its errors). Tests of the adapter itself (``tests/shared/``) may reach
  into nats-py to check it from outside.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("edge", "billing", "payments", "accounts", "simulator")
FORBIDDEN_IN_EDGE = ("web3", "eth_account", "eth_utils", "eth_abi", "eth_hash", "coincurve")
NATS_ADAPTER = Path("shared/src/aiapi_shared/bus.py")
NATS_ADAPTER_TESTS = Path("tests/shared")

# Libraries that talk to a database, NATS, the network or a server: a pure module reaches none.
IO_LIBRARIES = (
    "psycopg",
    "psycopg_pool",
    "nats",
    "httpx",
    "aiohttp",
    "sqlalchemy",
    "sqlmodel",
    "web3",
    "starlette",
    "fastapi",
    "uvicorn",
    "socket",
    "ssl",
    "http.client",
    "urllib.request",
    "smtplib",
    "aiosmtplib",
)

# The services that own a PostgreSQL schema, and the modules of theirs that may still run a
# statement outside a repository (relative to the service's ``src``; each with its reason).
SQL_SERVICES = ("billing", "accounts", "payments")
SQL_OUTSIDE_REPOSITORY: dict[str, str] = {
    "aiapi_billing/outbox.py": "balance snapshots (the outbox relay is the shared one)",
}

# Each service's modules of pure logic (a name is a module, or a package with all its modules).
# A module listed here that does not exist is reported too, so the list stays true.
PURE_MODULES: dict[str, tuple[str, ...]] = {
    "billing": (
        "batch_rules",
        "ledger",
        "lease_rules",
        "notices",
        "postings",
        "pricing",
        "ratelimit",
        "term_versions",
    ),
    "edge": (
        "allowance",
        "batch_form",
        "budget",
        "errors",
        "headers",
        "lease_math",
        "metering",
        "metrics_merge",
        "mirror_snapshot",
        "openai",
        "pool",
        "upstream_keys",
        "verdict",
        "wire",
        "worker_plan",
    ),
    "payments": (
        "addresses",
        "announcements",
        "book",
        "config",
        "depeg",
        "evm_networks",
        "keys",
        "model",
        "policy",
        "pricing",
        "secrets_guard",
        "settings",
        "sweep",
        "tickers",
    ),
    "accounts": (
        "account_search",
        "clientaddr",
        "domain",
        "live_view",
        "operators.audit",
        "operators.domain",
        "schemas",
        "upstream_view",
        "usage_report",
    ),
    "simulator": ("faults",),
}


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    imported: str
    reason: str = ""

    def __str__(self) -> str:
        if not self.imported:
            return f"{self.path}:{self.line}: {self.reason}"
        text = f"{self.path}:{self.line} imports {self.imported}"
        return f"{text} ({self.reason})" if self.reason else text


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def check_layout(root: Path) -> list[Violation]:
    """Every import that breaks the rules, in the workspace at ``root``."""
    violations: list[Violation] = []
    packages = {f"aiapi_{name}": name for name in SERVICES}
    owners: list[tuple[Path, str]] = [(root / "shared" / "src", "aiapi_shared")]
    owners += [(root / "services" / name / "src", f"aiapi_{name}") for name in SERVICES]
    for src, own in owners:
        for path in sorted(src.rglob("*.py")) if src.exists() else []:
            for line, module in _imports(path):
                top = _top(module)
                if (top in packages and top != own) or (
                    own == "aiapi_edge" and top in FORBIDDEN_IN_EDGE
                ):
                    violations.append(Violation(path, line, module))
    return violations


def _module_index(root: Path) -> dict[str, Path]:
    """Every workspace module (shared and services) by dotted name; a package by its __init__."""
    index: dict[str, Path] = {}
    for src in [root / "shared" / "src", *(root / "services" / n / "src" for n in SERVICES)]:
        for path in sorted(src.rglob("*.py")) if src.exists() else []:
            parts = path.relative_to(src).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            index[name] = path
    return index


def _resolved_imports(name: str, path: Path, index: dict[str, Path]) -> list[tuple[int, str]]:
    """What the module ``name`` imports, absolute: ``from .x import y`` resolved, and
    ``from pkg import mod`` naming the submodule ``pkg.mod`` where it is one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = node.module or ""
            if node.level:
                module = ".".join([*base, *([module] if module else [])])
            found.append((node.lineno, module))
            found.extend(
                (node.lineno, f"{module}.{alias.name}")
                for alias in node.names
                if f"{module}.{alias.name}" in index
            )
    return found


def _is_io_library(module: str) -> bool:
    return any(module == lib or module.startswith(f"{lib}.") for lib in IO_LIBRARIES)


def _loaded(module: str, index: dict[str, Path]) -> list[str]:
    """The workspace modules importing ``module`` runs: it and every package above it."""
    parts = module.split(".")
    names = (".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return [n for n in names if n in index]


def _io_reach(index: dict[str, Path]) -> dict[str, str]:
    """Each workspace module that reaches an I/O library, with the path it takes
    (``psycopg``, or ``psycopg via aiapi_x.repository``); found as a fixed point, so import
    cycles need no special case."""
    reach: dict[str, str] = {}
    deps: dict[str, list[str]] = {}
    for module, path in index.items():
        deps[module] = []
        for _, imported in _resolved_imports(module, path, index):
            if _is_io_library(imported):
                reach.setdefault(module, imported)
            deps[module].extend(_loaded(imported, index))
    changed = True
    while changed:
        changed = False
        for module, names in deps.items():
            if module in reach:
                continue
            through = next((n for n in names if n in reach), None)
            if through is not None:
                reach[module] = f"{reach[through]} via {through}"
                changed = True
    return reach


def check_purity(root: Path, pure: dict[str, tuple[str, ...]] = PURE_MODULES) -> list[Violation]:
    """Every import by which a listed pure module reaches an I/O library, and every listed
    module that does not exist."""
    index = _module_index(root)
    reach = _io_reach(index)
    violations: list[Violation] = []
    for service, names in pure.items():
        package = f"aiapi_{service}"
        for listed in names:
            name = f"{package}.{listed}"
            modules = [m for m in index if m == name or m.startswith(f"{name}.")]
            if not modules:
                missing = root / "services" / service / "src" / package / f"{listed}.py"
                violations.append(Violation(missing, 0, "", "listed as pure, but not found"))
            for module in sorted(modules):
                for line, imported in _resolved_imports(module, index[module], index):
                    if imported.startswith(f"{name}.") or imported == name:
                        continue  # a pure package's own modules are checked in their turn
                    if _is_io_library(imported):
                        violations.append(
                            Violation(index[module], line, imported, "an I/O library")
                        )
                        continue
                    through = next((n for n in _loaded(imported, index) if n in reach), None)
                    if through is not None:
                        reason = f"reaches {reach[through]}"
                        if through != imported:
                            reason += f" via {through}"
                        violations.append(Violation(index[module], line, imported, reason))
    return violations


def _is_repository(relative: Path) -> bool:
    return relative.name == "repository.py" or "repository" in relative.parts[:-1]


def check_sql_placement(
    root: Path, allowed: dict[str, str] = SQL_OUTSIDE_REPOSITORY
) -> list[Violation]:
    """Every ``execute``/``executemany`` call outside a repository module, in the services that
    own a PostgreSQL schema (a listed exception aside)."""
    violations: list[Violation] = []
    for service in SQL_SERVICES:
        src = root / "services" / service / "src"
        for path in sorted(src.rglob("*.py")) if src.exists() else []:
            relative = path.relative_to(src)
            if _is_repository(relative) or relative.as_posix() in allowed:
                continue
            tree = ast.parse(path.read_text("utf-8"), filename=str(path))
            violations.extend(
                Violation(path, node.lineno, "", "a statement outside the repository")
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany")
            )
    return violations


def check_nats_adapter(root: Path) -> list[Violation]:
    """Every import of ``nats`` outside the adapter (and outside the adapter's own tests)."""
    places = [root / "shared" / "src", root / "tests"]
    places += sorted((root / "services").glob("*/src")) + sorted((root / "tooling").glob("*/src"))
    violations: list[Violation] = []
    for place in places:
        for path in sorted(place.rglob("*.py")) if place.exists() else []:
            relative = path.relative_to(root)
            if relative == NATS_ADAPTER or relative.is_relative_to(NATS_ADAPTER_TESTS):
                continue
            violations += [
                Violation(path, line, module, f"only {NATS_ADAPTER} imports nats")
                for line, module in _imports(path)
                if _top(module) == "nats"
            ]
    return violations
