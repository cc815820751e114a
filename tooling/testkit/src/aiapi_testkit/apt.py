"""Debian packages the tests need (chromium, kubectl), installed with apt when missing.

The test command installs what it needs by itself: as root (CI runs as root), a missing package
is installed once; concurrent test processes serialise the install on a lock file. Not root: a
clear error saying what to install.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from pathlib import Path

_INSTALL_TIMEOUT_S = 900


def ensure_package(binary: Path, package: str) -> Path:
    """``binary``, installing Debian's ``package`` first when it is missing."""
    if binary.exists():
        return binary
    if os.geteuid() != 0:
        raise RuntimeError(
            f"the tests need {binary}; as root, install it: apt-get install {package}"
        )
    lock_path = Path(tempfile.gettempdir()) / f"aiapi-apt-{package}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():  # another test process installed it while we waited
            return binary
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
            done = subprocess.run(
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr[-2000:]}"
                )
    if not binary.exists():
        raise RuntimeError(f"apt-get installed {package}, but {binary} is still missing")
    return binary
