"""The admin listener as a service of the gateway: its endpoint, its site, its metrics."""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceCollection

from sipgateway.admin.metrics import Metrics
from sipgateway.admin.readiness import AdminListenerService, Readiness
from sipgateway.admin.web import AdminRoot, AdminSite, Health, MetricsPage, Ready, Sessions
from sipgateway.config import ConfigError
from sipgateway.config.admin import AdminConfig
from sipgateway.transports.limits import ConnectionCounter, LimitedFactory
from sipgateway.transports.tls import server_from_string

#: open connections to the admin listener, in all and from one address (a scraper, a probe, a person)
MAX_CONNECTIONS = 64
MAX_PER_ADDRESS = 16
#: seconds an idle HTTP connection stays open
IDLE_TIMEOUT = 60


def admin_site(config: AdminConfig, gateway: Any, backend: Any, services: IServiceCollection,
               reactor: Any) -> AdminSite:
    """The admin listener's HTTP site for ``gateway``; ``services`` holds its listeners
    (readiness).  From now on every request served is counted for ``/metrics``."""
    readiness = Readiness(services, backend)
    metrics = Metrics(gateway, readiness.listener_names, readiness.acs_problem, backend)
    root = AdminRoot({b"healthz": Health(), b"readyz": Ready(readiness), b"metrics": MetricsPage(metrics.registry),
                      b"sessions": Sessions(gateway)}, reactor, config.user, config.password)
    site = AdminSite(root, timeout=IDLE_TIMEOUT, reactor=reactor)
    site.metrics = metrics
    return site


def admin_service(config: AdminConfig, gateway: Any, backend: Any, services: IServiceCollection,
                  reactor: Any) -> AdminListenerService:
    """The admin listener for ``gateway``, to be added to ``services``."""
    site = admin_site(config, gateway, backend, services, reactor)
    try:
        endpoint = server_from_string(reactor, config.listen)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise ConfigError(f"admin listener: bad endpoint {config.listen!r}: {e}") from None
    factory = LimitedFactory(site, ConnectionCounter(MAX_CONNECTIONS, MAX_PER_ADDRESS), "admin")
    return AdminListenerService(endpoint, factory, f"admin ({config.listen})", config.listen)
