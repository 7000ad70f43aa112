"""The ``http`` door's own listener keys: ``trusted_proxies``, ``max_sessions``, ``max_body``.

They may be written as keys of an ``[listener:NAME]`` section or inside the endpoint string,
like the keys every door takes; ``HTTPOptions`` is what the door gets of them
(``ListenerSettings.options``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sipgateway.config.values import ConfigError, number

#: HTTP client sessions a listener keeps (each is one logged-in SIP2 session)
DEFAULT_MAX_SESSIONS = 10_000
#: bytes of one request body; a SIP2 message is at most a few KiB, in JSON at most six times that
DEFAULT_MAX_BODY = 65_536
MIN_MAX_BODY = 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HTTPOptions:
    #: peers whose X-Forwarded-For names the client (reverse proxies); nobody else's is read
    trusted_proxies: tuple[Network, ...] = ()
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_body: int = DEFAULT_MAX_BODY


def http_options(values: dict[str, str], where: str) -> HTTPOptions:
    """The ``http`` door's keys of one listener, checked (ConfigError names the key)."""
    return HTTPOptions(
        trusted_proxies=trusted_proxies(values.get("trusted_proxies", ""), where),
        max_sessions=int(number(values, "max_sessions", DEFAULT_MAX_SESSIONS, where, integer=True, minimum=1)),
        max_body=int(number(values, "max_body", DEFAULT_MAX_BODY, where, integer=True, minimum=MIN_MAX_BODY)),
    )


def trusted_proxies(value: str, where: str) -> tuple[Network, ...]:
    """Addresses or networks (``10.0.0.1``, ``10.0.0.0/24``, ``::1``), separated by commas or spaces
    (in an endpoint string an IPv6 address's colons are escaped: ``\\:\\:1``)."""
    networks = []
    for part in value.replace("\\", "").replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{where}: trusted_proxies: {part!r} is not an IP address or network "
                              "(for example 127.0.0.1, 10.0.0.0/24 or ::1)") from None
    return tuple(networks)
