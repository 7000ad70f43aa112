"""Whether the embedded library system can serve now, for the admin listener's ``/readyz``
and ``sipgateway_acs_up``: what the database process's runner knows (down, not answering,
file deleted or replaced, a database error), then two cheap checks of the file (that this
user may write it, that its file system has room).  A few system calls, no query: a probe
every few seconds costs nothing."""

from __future__ import annotations

import os
from typing import Any

from sipgateway.acs.postgresql import is_url

#: below this many free bytes the file system of the database counts as full
MIN_FREE_BYTES = 1 << 20


def problem(acs: Any) -> str | None:
    """Why ``acs`` (a ``SQLiteACS``) cannot serve now, in one line, or None."""
    runner = acs.runner
    why = runner.problem() if hasattr(runner, "problem") else ("the database is closed" if runner.failing else None)
    if why is not None:
        return why
    path = acs.path
    if is_url(path):
        return None  # PostgreSQL: no file; the runner's last batch says whether the server answers
    if not os.path.exists(path):
        return f"the database file {path} is missing"  # before the database process's heartbeat notices
    effective = os.access in os.supports_effective_ids
    if not os.access(path, os.W_OK, effective_ids=effective):
        return f"the database file {path} is not writable by uid {os.geteuid()}"
    try:
        fs = os.statvfs(os.path.dirname(path) or ".")
    except OSError as e:
        return f"the file system of {path} cannot be checked: {e.strerror or e}"
    free = (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize
    if free < MIN_FREE_BYTES:
        return f"the file system of {path} is full ({free} bytes free)"
    return None
