"""Whether a library system reached over SIP2 can serve now, for the admin listener's
``/readyz`` and ``sipgateway_acs_up``: ready while at least one server's circuit breaker
is closed (breaker.py), else one line naming each server and why it was taken out of
service.  Read from the breakers' state: no request is sent to find out."""

from __future__ import annotations

from sipgateway.acs.upstream.breaker import CircuitBreaker, FailoverGroup


def problem(group: FailoverGroup) -> str | None:
    """Why no server of ``group`` is in service, in one line, or None."""
    if group.healthy:
        return None
    servers = "; ".join(f"{m.name}: {out_of_service(m.breaker)}" for m in group.members)
    return one_line(f"no library system server is in service ({servers})")


def out_of_service(breaker: CircuitBreaker) -> str:
    # the reasons are those the breaker logs: server names and errors, never a URL's password
    return f"circuit open after {breaker.failures} failures in a row, the last: {breaker.last_failure}"


def one_line(text: str) -> str:
    return " ".join(text.split())
