"""Which client endpoint an upstream URL gets: an IP address is connected to directly, a
host name is looked up on every connect."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from sipgateway.acs.upstream.endpoints import client_endpoint
from sipgateway.acs.upstream.url import parse_url
from tests.system.process import has_ipv6_loopback


class EndpointTests(unittest.TestCase):
    def test_ip_addresses_are_connected_to_directly_and_names_looked_up(self):
        self.assertIsInstance(client_endpoint(reactor, parse_url("sip2://127.0.0.1:6001")), TCP4ClientEndpoint)
        self.assertIsInstance(client_endpoint(reactor, parse_url("sip2://[::1]:6001")), TCP6ClientEndpoint)
        self.assertIsInstance(client_endpoint(reactor, parse_url("sip2://localhost:6001")), HostnameEndpoint)
        self.assertIsInstance(client_endpoint(reactor, parse_url("sip2://ils.example.org:6001")), HostnameEndpoint)

    @inlineCallbacks
    def _connects(self, server_endpoint, url: str):
        accepted = []

        class Accept(Protocol):
            def connectionMade(self):
                accepted.append(self.transport.getPeer())
                self.transport.loseConnection()

        port = yield server_endpoint.listen(Factory.forProtocol(Accept))
        self.addCleanup(port.stopListening)
        protocol = yield client_endpoint(reactor, parse_url(url.format(port=port.getHost().port))).connect(
            Factory.forProtocol(Protocol))
        protocol.transport.loseConnection()
        self.assertEqual(protocol.transport.getPeer().port, port.getHost().port)

    def test_an_ipv4_address_connects(self):
        return self._connects(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"), "sip2://127.0.0.1:{port}")

    def test_an_ipv6_address_connects(self):
        if not has_ipv6_loopback():
            raise unittest.SkipTest("no IPv6 loopback here")
        return self._connects(TCP6ServerEndpoint(reactor, 0, interface="::1"), "sip2://[::1]:{port}")
