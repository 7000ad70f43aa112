"""What an operator may see of a session: its listener, where it comes from, its account
and what it has served (the admin listener's ``/sessions``, the JSON log's keys).  No
secrets, and no patron: a session holds none of either beyond the request in progress.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sipgateway.acs.model import Account
from sipgateway.settings import ListenerSettings


def peer_address(session: Any) -> str:
    """The peer without its listener's name, as the doors write it: ``10.1.2.3:40022``,
    ``[::1]:5000 [CN=sorter1,O=Library]`` (TLS), ``/dev/ttyUSB0`` (serial)."""
    peer, name = session.peer, session.settings.name
    return peer[len(name) + 1:] if peer.startswith(name + " ") else peer


def local_time(seconds: float | None) -> str | None:
    """A reactor time as ISO 8601 local time with its UTC offset, to the second."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def session_view(session: Any) -> dict[str, Any]:
    """One live session, ready for JSON."""
    account, terminal = session.account, session.terminal
    return {
        "listener": session.settings.name,
        "peer": peer_address(session),
        "account": account.name if account is not None else None,
        "terminal": terminal.location if terminal is not None else None,
        "since": local_time(session.since),
        "served": session.served,
        "last_code": session.last_code or None,
        "last_at": local_time(session.last_at) if session.served else None,
    }


def connection_of(source: Any) -> dict[str, str]:
    """listener, peer and account of a log event's source when it is a session or a door's
    connection (their ``log`` gives events that source); empty for anything else."""
    settings = getattr(source, "settings", None)
    if not isinstance(settings, ListenerSettings) or not isinstance(getattr(source, "peer", None), str):
        return {}
    found = {"listener": settings.name, "peer": peer_address(source)} if source.peer else {"listener": settings.name}
    account = getattr(source, "account", None)
    if not isinstance(account, Account):
        account = getattr(getattr(source, "session", None), "account", None)
    if isinstance(account, Account):
        found["account"] = account.name
    return found
