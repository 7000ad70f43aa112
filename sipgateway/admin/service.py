"""The admin listener as a service of the gateway: its endpoint, its site, its metrics."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IServiceCollection
from twisted.web.resource import Resource

from sipgateway.admin.metrics import Metrics
from sipgateway.admin.readiness import AdminListenerService, Readiness
from sipgateway.admin.web import AdminRoot, AdminSite, Health, MetricsPage, Ready, Sessions
from sipgateway.config import ConfigError
from sipgateway.config.admin import AdminConfig
from sipgateway.transports.limits import ConnectionCounter, LimitedFactory
from sipgateway.transports.tls import server_from_string
from sipgateway.workers.setup import ADMIN_PORT, METRICS_DIR_VARIABLE

#: open connections to the admin listener, in all and from one address (a scraper, a probe, a person)
MAX_CONNECTIONS = 64
MAX_PER_ADDRESS = 16
#: seconds an idle HTTP connection stays open
IDLE_TIMEOUT = 60


def admin_site(config: AdminConfig, gateway: Any, backend: Any, services: IServiceCollection,
               reactor: Any) -> AdminSite:
    """The admin listener's HTTP site for ``gateway``; ``services`` holds its listeners
    (readiness).  From now on every request served is counted for ``/metrics``.  In a worker
    process (``gateway.peers``), /sessions and /metrics are every worker's (workers.py)."""
    readiness = Readiness(services, backend)
    peers = getattr(gateway, "peers", None)
    metrics = Metrics(gateway, readiness.listener_names, readiness.acs_problem, backend, process=peers is None)
    pages: dict[bytes, Resource] = {b"metrics": MetricsPage(metrics.registry), b"sessions": Sessions(gateway)}
    if peers is not None:
        from sipgateway.admin.workers import Gathered, all_metrics, all_sessions, share_figures

        directory = os.environ[METRICS_DIR_VARIABLE]  # the parent's run directory names it to every worker
        share_figures(metrics.registry, peers, directory)
        pages = {b"metrics": Gathered(peers, "metrics", all_metrics(directory)),
                 b"sessions": Gathered(peers, "sessions", all_sessions)}
    root = AdminRoot({b"healthz": Health(), b"readyz": Ready(readiness), **pages}, reactor, config.user,
                     config.password)
    site = AdminSite(root, timeout=IDLE_TIMEOUT, reactor=reactor)
    site.metrics = metrics
    return site


def admin_service(config: AdminConfig, gateway: Any, backend: Any, services: IServiceCollection,
                  reactor: Any, adoption: Any = None) -> AdminListenerService | None:
    """The admin listener for ``gateway``, to be added to ``services``.  In a worker process
    (``adoption``) it adopts the port the parent holds; None: worker 1 alone serves it (an
    endpoint that cannot be shared), this worker only answers the others' questions."""
    site = admin_site(config, gateway, backend, services, reactor)
    try:
        endpoint = server_from_string(reactor, config.listen)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise ConfigError(f"admin listener: bad endpoint {config.listen!r}: {e}") from None
    if adoption is not None:
        endpoint = adoption.endpoint(ADMIN_PORT, endpoint)
        if endpoint is None:
            return None
    factory = LimitedFactory(site, ConnectionCounter(MAX_CONNECTIONS, MAX_PER_ADDRESS), "admin")
    return AdminListenerService(endpoint, factory, f"admin ({config.listen})", config.listen)
