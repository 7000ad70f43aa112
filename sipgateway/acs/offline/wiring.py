"""How a forwarding backend gets store-and-forward: ``open_offline`` wraps the
``UpstreamACS`` that ``--acs sip2://...`` opens, with the journal in ``--database``.

The result is the backend's ``acs`` and the service twistd starts and stops in place of the
``UpstreamACS`` (it starts and stops it); pass-through sessions come from its
``open_session(peer)``, and their ``login(request, deadline)`` as before.  Called at start-up
(before privileges are dropped), so that a journal that cannot be opened stops start-up
with one line.
"""

from __future__ import annotations

from typing import Any

from sipgateway.acs.offline.acs import OfflineACS
from sipgateway.acs.offline.journal import Journal
from sipgateway.acs.offline.runner import AsyncJournal
from sipgateway.acs.upstream.backend import UpstreamACS
from sipgateway.config.offline import OfflineConfig
from sipgateway.config.values import ConfigError


def open_offline(upstream: UpstreamACS, offline: OfflineConfig, database_path: str, reactor: Any) -> OfflineACS:
    """``upstream`` with the offline journal in the database file at ``database_path``
    (its tables added if missing); replayed entries older than the report keeps are pruned."""
    if not upstream.pooled and offline.any_accepts and not offline.replay_login:
        raise ConfigError("[upstream] offline_replay_login: missing; in pass-through mode (no login= in the URLs) "
                          "transactions accepted offline are replayed on a connection of its own, logged in with "
                          "offline_replay_login and offline_replay_password")
    journal = Journal.open(database_path)
    try:
        journal.prune(reactor.seconds())
        waiting = journal.open_items()
    except BaseException:
        journal.close()
        raise
    return OfflineACS(upstream, AsyncJournal(journal, reactor), offline, reactor, open_items=waiting)
