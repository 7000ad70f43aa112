"""Who sent an HTTP request: the client's address (what failed logins are counted against)
and its TLS client certificate's subject (what ``cert_accounts`` binds).

The address is the TCP peer's, unless the peer is one of the listener's
``trusted_proxies``: then ``X-Forwarded-For`` names it, read from the right (the entry the
trusted proxy added) past every trusted proxy.  Nobody else's X-Forwarded-For is read, so a
client cannot pick the address its failed logins count against.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sipgateway.config.http import Network
from sipgateway.transports.raw import describe_peer
from sipgateway.transports.tls import peer_subject


@dataclass(frozen=True, slots=True)
class Client:
    #: the client's IP address
    address: str
    #: for log lines: the TCP peer, and the client it forwards for
    peer: str
    #: the verified client certificate's subject (RFC 4514), None without one
    subject: str | None


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def _bare(entry: str) -> str | None:
    """An X-Forwarded-For entry's address ("[::1]:80" and "10.0.0.1:80" lose the port), or None."""
    entry = entry.strip()
    if entry.startswith("["):
        entry = entry[1:].partition("]")[0]
    elif entry.count(":") == 1:
        entry = entry.partition(":")[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


def forwarded_for(peer: str, header: list[bytes] | None, proxies: tuple[Network, ...]) -> str:
    """The client's address: ``peer``'s, or the one its X-Forwarded-For gives when ``peer`` is trusted."""
    if not header or not proxies or not _trusted(peer, proxies):
        return peer
    client = peer
    for entry in reversed(b",".join(header).decode("latin-1").split(",")):
        address = _bare(entry)
        if address is None:
            break  # garbled: keep the last address a trusted proxy vouched for
        client = address
        if not _trusted(address, proxies):
            break
    return client


def client_of(request, proxies: tuple[Network, ...]) -> Client:
    """The ``Client`` of a twisted.web request; the certificate's subject is read once per connection."""
    channel = request.channel
    subject = getattr(channel, "sipgateway_subject", False)
    if subject is False:
        subject = channel.sipgateway_subject = peer_subject(channel.transport)
    peer_address = request.getClientAddress()
    host = str(getattr(peer_address, "host", "") or peer_address)
    address = forwarded_for(host, request.requestHeaders.getRawHeaders(b"x-forwarded-for"), proxies)
    peer = describe_peer(peer_address)
    return Client(address, peer if address == host else f"{address} via {peer}", subject)
