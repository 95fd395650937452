"""Failpoints for crash tests: with MTKD_FAILPOINT=name@N the process SIGKILLs itself the N-th
time it passes `failpoint(name)` (N defaults to 1). Unset, a failpoint costs one dict lookup."""
from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    spec = os.environ.get("MTKD_FAILPOINT")
    if not spec:
        return
    target, _, n = spec.partition("@")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)
