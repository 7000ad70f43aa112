"""A library system's own SIP2 server as the gateway's backend (``--acs sip2://...`` or
``sip2s://...``, ``sip2``/``sip2s`` in acs/backends.py).

``open_forwarding`` does the start-up work: it opens the gateway's own database
(``--database sqlite:PATH``, created with ``--init`` as for the embedded library system),
which keeps the gateway's state in forwarding mode: its SC accounts (who may log in in
pooled mode, and the accounts doors bind devices to), the failed-login and wrong-PIN
counters; and it builds the ``UpstreamACS`` for the URLs, in failover order.
``ForwardingBackend`` runs both: the database process and the upstream connections start
with the gateway and stop with it.

In pass-through mode (no ``login=`` in the URLs) each device logs in upstream itself
(sipgateway/passthrough.py); a device bound to an account by its door logs in with that
account's ``upstream_login``/``upstream_password``, so start-up refuses a bound account
without them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.application.service import MultiService
from twisted.logger import Logger
from zope.interface import implementer

from sipgateway.acs.backends import BackendUnavailable, IBackend
from sipgateway.acs.sqlite import ACSUnavailable
from sipgateway.acs.upstream.backend import UpstreamACS
from sipgateway.config import Config, ConfigError
from sipgateway.privileges import RunAs
from sipgateway.startup import EmbeddedBackend, open_database

log = Logger()


def open_forwarding(config: Config, reactor: Any, run_as: RunAs = (None, None)) -> ForwardingBackend:
    """The backend of ``--acs sip2://...``: the upstream servers, and the gateway's own
    database for its accounts and counters."""
    if not config.upstreams[0].pooled:
        check_bound_credentials(config)
    upstream = build_upstream(config, reactor)
    try:
        own, findings = open_database(config, reactor, run_as)
    except ACSUnavailable as e:
        raise BackendUnavailable(str(e)) from None
    # patrons and items are the library system's; in pass-through mode so are the logins
    keep = {"SC accounts"} if upstream.pooled else set()
    findings.missing = [what for what in findings.missing if what in keep]
    try:
        offline = _with_offline(upstream, config, reactor, run_as)
    except BaseException:
        own.close()
        raise
    return ForwardingBackend(offline, EmbeddedBackend(own, config, findings), config)  # type: ignore[arg-type]


def _with_offline(upstream: UpstreamACS, config: Config, reactor: Any, run_as: RunAs) -> Any:
    """The upstream with store-and-forward (sipgateway/acs/offline/), its journal in --database
    (opened as the user the gateway runs as, as the database is)."""
    from sipgateway.acs.offline.wiring import open_offline
    from sipgateway.acs.sqlite.backend import database_path
    from sipgateway.privileges import acting_as

    try:
        with acting_as(*run_as):
            return open_offline(upstream, config.offline, database_path(config.database), reactor)
    except ConfigError:
        raise
    except Exception as e:
        raise BackendUnavailable(f"--database {config.database}: cannot open the offline journal: {e}") from None


def build_upstream(config: Config, reactor: Any) -> UpstreamACS:
    """The circulation backend for ``config.upstreams`` (a wrapper around it must keep
    ``pooled``, ``configs`` and ``open_session`` reachable: passthrough.py asks for them)."""
    servers = [replace(server, trace=config.trace) for server in config.upstreams]  # wire lines: [gateway] trace
    return UpstreamACS(servers, reactor,  # checks sip2s files: a ValueError naming the key
                       cached_answer_age=config.cached_answer_age,
                       rules={a.name: a.rules for a in config.accounts if a.rules})


def check_bound_credentials(config: Config) -> None:
    """Pass-through mode: every account a listener binds devices to (``account=``,
    ``cert_accounts``) must say how it logs in upstream."""
    with_login = {a.name for a in config.accounts if a.upstream_login}
    for listener in config.listeners:
        names = [listener.settings.account] if listener.settings.account else []
        for name in [*names, *listener.settings.cert_accounts.values()]:
            if name not in with_login:
                raise ConfigError(f"listener {listener.settings.name}: account {name!r} binds devices that log in to "
                                  f"the library system without a 93 of their own (pass-through mode): give "
                                  f"[account:{name}] upstream_login and upstream_password")


@implementer(IBackend)
class ForwardingBackend(MultiService):
    """The upstream library system for circulation; the gateway's own database for who may
    log in and for the counters."""

    def __init__(self, upstream: UpstreamACS, own: EmbeddedBackend, config: Config) -> None:
        super().__init__()
        self.acs = upstream
        self.own = own
        self.accounts = own.accounts
        self.attempts = own.attempts
        self.config = config
        own.setServiceParent(self)       # the database first: logins and counters need it
        upstream.setServiceParent(self)  # stopped first

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        mode = "pooled" if self.acs.pooled else "pass-through"
        log.info("Forwarding to the library system in {mode} mode: {servers}", mode=mode,
                 servers=", ".join(str(c) for c in self.config.upstreams))
        if not self.acs.pooled and not all(c.institution for c in self.config.upstreams):
            log.warn("Pass-through mode without institution= in the upstream URL: a device whose login name has no "
                     "[account:NAME] here (giving its institution) is forwarded with an empty AO")

    def upstream(self) -> UpstreamACS:
        """The ``UpstreamACS``, inside the offline wrapper or not."""
        return getattr(self.acs, "upstream", self.acs)

    def unready(self) -> str | None:
        """Why it cannot serve now, in one line (the admin listener's /readyz), or None: the
        gateway's own database (accounts, counters) as the embedded backend checks it, then
        whether any library system server is in service."""
        from sipgateway.acs.upstream import health

        why = self.own.unready()
        if why is not None:
            return f"the gateway's database: {why}"
        return health.problem(self.upstream().group)

    def collectors(self) -> list:
        """Its figures for the admin listener's /metrics: each server's state, the offline
        journal's (with the offline wrapper), the own database process's batches."""
        from sipgateway.acs.offline.metrics import OfflineCollector  # prometheus_client, only with the admin listener
        from sipgateway.acs.sqlite.backend import database_path
        from sipgateway.acs.upstream.metrics import UpstreamCollector

        group = self.upstream().group
        found: list = [UpstreamCollector(group)]
        if hasattr(self.acs, "journal"):
            found.append(OfflineCollector(lambda: group.healthy, database_path(self.config.database)))
        return [*found, *self.own.collectors()]
