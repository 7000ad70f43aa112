"""The listen backlog: how many connections the kernel queues until the gateway accepts them.

After a restart hundreds of devices reconnect at once. With a short queue (Twisted's
default is 50) the kernel drops the SYNs that do not fit, and each of those devices waits
for its TCP retry (1 s, then 3, 7, 15 s ...): 2,000 connections took 36 s to open. So the
default is the largest queue the system grants, ``net.core.somaxconn``: Linux silently
caps any larger value to it, and asking for less would throw away what the administrator
allowed.
"""

from __future__ import annotations

from sipgateway.transports.proxyheader import unwrapped

SOMAXCONN = "/proc/sys/net/core/somaxconn"
#: where somaxconn cannot be read (not Linux, /proc not mounted)
FALLBACK_BACKLOG = 1024
MAX_BACKLOG = 65535
#: endpoint types whose ``listen`` takes a ``backlog=`` (Twisted's and our ``tls:``)
BACKLOG_ENDPOINTS = frozenset({"tcp", "tcp6", "ssl", "unix", "tls", "siptls"})


def default_backlog(path: str = SOMAXCONN) -> int:
    """The system's somaxconn (at most 65535), or 1024 when it cannot be read."""
    try:
        with open(path, encoding="ascii") as f:
            n = int(f.read().strip())
    except (OSError, ValueError):
        return FALLBACK_BACKLOG
    return min(n, MAX_BACKLOG) if n > 0 else FALLBACK_BACKLOG


def endpoint_type(endpoint: str) -> str:
    """The type of a Twisted endpoint string: "tcp" for "tcp:6001:interface=127.0.0.1" (and
    for "haproxy:tcp:6001": the PROXY header is read on the endpoint it wraps)."""
    return unwrapped(endpoint).split(":", 1)[0].strip().lower()


def with_backlog(endpoint: str, backlog: int | None) -> str:
    """``endpoint`` with ``:backlog=N`` added (``backlog``, else the default) when its type takes one."""
    if endpoint_type(endpoint) not in BACKLOG_ENDPOINTS:
        return endpoint
    return f"{endpoint}:backlog={backlog or default_backlog()}"
