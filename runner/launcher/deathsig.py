"""Dying with one's parent: Linux's parent-death signal (``PR_SET_PDEATHSIG``).

A process that asks gets SIGTERM when the thread that started it ends, even when its
parent was killed with SIGKILL: so a killed launcher takes its ``mpiexec``, its ranks
and its spawners (and through them the tasks) down with it, instead of leaving them
running next to the copies a new launcher starts. Standard library only (the
spawners import it).
"""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = None
    return _libc


def die_with_parent(parent: int | None = None) -> None:
    """Ask for SIGTERM when the parent dies (Linux only). With ``parent`` (its pid as the
    parent knew it): if it died before the request, SIGTERM now."""
    libc = _load_libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def preexec_die_with_parent() -> None:
    """``die_with_parent`` as a ``preexec_fn`` (runs in the child between fork and exec;
    call ``prepare()`` in the parent first, so the child loads nothing)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def prepare() -> None:
    """Load libc in the parent, before any ``preexec_die_with_parent`` child is started."""
    _load_libc()
