"""The ``http`` door: SIP2 over HTTP(S), in three shapes, behind the same sessions as the
socket doors.

``--listen http:ENDPOINT`` with any server endpoint: ``http:tls:6443:privateKey=...`` for
HTTPS (with ``caCerts``, client certificates bind accounts through ``cert_accounts`` as on
the TLS door), or ``http:tcp:8080:interface=127.0.0.1`` behind a TLS-terminating proxy.
The paths and answers are in resource.py, the body shapes in shapes.py, the HTTP client
sessions (tokens) in tunnels.py, who is asking in clients.py, the bounded Site in site.py.
"""

from __future__ import annotations

from sipgateway.config.http import HTTPOptions
from sipgateway.gateway import Gateway
from sipgateway.settings import ListenerSettings
from sipgateway.transports.httpdoor.resource import SIP2Resource
from sipgateway.transports.httpdoor.site import SIP2Site
from sipgateway.transports.httpdoor.tunnels import Tunnels


def HTTPDoorFactory(gateway: Gateway, settings: ListenerSettings) -> SIP2Site:  # noqa: N802 - a factory, named as one
    """The protocol factory of one ``http`` listener (``DOORS["http"]``)."""
    options = settings.options if isinstance(settings.options, HTTPOptions) else HTTPOptions()
    tunnels = Tunnels(gateway, settings, options)
    return SIP2Site(SIP2Resource(tunnels, options), tunnels, options.max_body, gateway.reactor)
