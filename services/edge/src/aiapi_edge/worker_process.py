"""A worker's side of the edge supervisor (I/O: file descriptors, ``prctl``).

The supervisor (:mod:`.supervisor`) starts each worker with the listening sockets it bound, a
pipe to report on, and its own pid; these helpers are what the worker does with them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket

log = logging.getLogger("aiapi.edge.worker")

_PR_SET_PDEATHSIG = 1


def die_with(supervisor_pid: int) -> None:
    """Have the kernel send this process SIGTERM when its supervisor dies (even by SIGKILL), so
    no worker outlives it holding the port and its spool; exit now if it is already gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the supervisor's stop still ends its workers
        log.warning("cannot ask to be stopped with the supervisor")
    if os.getppid() != supervisor_pid:
        raise SystemExit(0)


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket the supervisor bound, passed down as descriptor ``fd``."""
    return socket.socket(fileno=fd)


def report_started(fd: int) -> None:
    """Tell the supervisor this worker has started (one byte down its pipe)."""
    with contextlib.suppress(OSError):
        os.write(fd, b"s")
    with contextlib.suppress(OSError):
        os.close(fd)
