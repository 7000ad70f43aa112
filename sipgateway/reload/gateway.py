"""Reloading the ``[gateway]`` settings that are read afresh where they are used: the
licences every 98 reports, ``trace``, and the connection limits (checked at each new
connection; connections open above a lowered limit stay open)."""

from __future__ import annotations

from sipgateway.config import Config
from sipgateway.reload.machinery import Change, Running


def prepare(running: Running, new: Config) -> Change | None:
    old = running.config
    names = ("licences", "trace", "max_connections", "max_connections_per_address")
    changed = [name for name in names if getattr(old, name) != getattr(new, name)]
    if not changed:
        return None
    gateway, counter = running.gateway, running.counter

    def apply() -> None:
        gateway.licences, gateway.trace = new.licences, new.trace
        counter.max_total, counter.max_per_address = new.max_connections, new.max_connections_per_address

    return Change("[gateway] " + ", ".join(changed), apply)
