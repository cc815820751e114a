"""The workspace's architecture rules, checked by reading source files (no imports executed).

* A service never imports another service (``aiapi_edge`` may not import ``aiapi_billing``);
  services talk through events, request/reply and KV only.
* ``shared`` imports no service.
* The edge never imports chain libraries (``web3``, ``eth_*``, ``coincurve``): it must stay small.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("edge", "billing", "payments", "accounts", "simulator")
FORBIDDEN_IN_EDGE = ("web3", "eth_account", "eth_utils", "eth_abi", "eth_hash", "coincurve")


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}"


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
