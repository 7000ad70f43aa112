"""Which listeners the workers share, and how a worker's endpoint adopts the parent's socket
(with TLS and the PROXY protocol still wrapping it); the workers setting."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.config import ConfigError, load
from sipgateway.config.workers import MAX_WORKERS, cores
from sipgateway.transports.proxyheader import ProxyHeaderFactory
from sipgateway.transports.tls import TLSServerEndpoint, server_from_string
from sipgateway.workers.ports import AdoptedEndpoint, Adoption, shareable
from tests.transports.certs_pki import make_pki


class AdoptingReactor(MemoryReactor):
    def __init__(self) -> None:
        super().__init__()
        self.adopted: list[tuple[int, int, object]] = []

    def adoptStreamPort(self, fd, family, factory):  # noqa: N802 - Twisted's name
        self.adopted.append((fd, family, factory))
        return object()


def temporary(case: SynchronousTestCase) -> str:
    """A directory of its own, removed after the test (``mktemp`` would write into the checkout)."""
    path = tempfile.mkdtemp(prefix="sipgateway-test-")
    case.addCleanup(shutil.rmtree, path, True)
    return path


class PortsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = AdoptingReactor()

    def endpoint(self, description: str):
        return server_from_string(self.reactor, description)

    def test_tcp_unix_tls_and_proxied_tcp_are_shared_serial_is_not(self) -> None:
        pki = make_pki(os.path.join(temporary(self), "pki"))
        tls = f"tls:0:privateKey={pki.server.key_path}:certKey={pki.server.cert_path}"
        for description in ("tcp:0", "tcp6:0", "unix:/tmp/x.sock", "haproxy:tcp:0", tls):
            self.assertTrue(shareable(self.endpoint(description)), description)
        self.assertFalse(shareable(object()))
        from sipgateway.transports.serial import SerialEndpointParser
        serial = SerialEndpointParser().parseStreamServer(self.reactor, "/dev/ttyS0")
        self.assertFalse(shareable(serial))

    def adopted_by(self, description: str, first: bool = False):
        r, w = os.pipe()  # a descriptor the endpoint closes once adopted
        os.close(w)
        adoption = Adoption(self.reactor, {0: (r, socket.AF_INET)}, first=first, pid=4242)
        endpoint = adoption.endpoint(0, self.endpoint(description))
        factory = Factory.forProtocol(Protocol)
        self.successResultOf(endpoint.listen(factory))
        ((fd, family, used),) = self.reactor.adopted
        self.assertEqual((fd, family), (r, socket.AF_INET))
        with self.assertRaises(OSError):
            os.fstat(r)  # closed: the port keeps its own
        return factory, used

    def test_a_plain_port_is_adopted_with_the_door_factory(self) -> None:
        factory, used = self.adopted_by("tcp:6001")
        self.assertIs(used, factory)

    def test_the_proxy_protocol_wraps_the_adopted_port(self) -> None:
        factory, used = self.adopted_by("haproxy:tcp:6001")
        self.assertIsInstance(used, ProxyHeaderFactory)  # the worker reads the PROXY header
        self.assertIs(used.wrappedFactory, factory)

    def test_tls_wraps_the_adopted_port(self) -> None:
        pki = make_pki(os.path.join(temporary(self), "pki"))
        endpoint = self.endpoint(f"tls:6009:privateKey={pki.server.key_path}:certKey={pki.server.cert_path}")
        self.assertIsInstance(endpoint, TLSServerEndpoint)
        r, w = os.pipe()
        os.close(w)
        adopted = Adoption(self.reactor, {3: (r, socket.AF_INET)}, first=False, pid=1).endpoint(3, endpoint)
        self.successResultOf(adopted.listen(Factory.forProtocol(Protocol)))
        ((_, _, used),) = self.reactor.adopted
        self.assertEqual(type(used).__name__, "TLSMemoryBIOFactory")

    def test_a_listener_that_cannot_be_shared_is_served_by_worker_1_alone(self) -> None:
        serial = object()
        self.assertIs(Adoption(self.reactor, {}, first=True, pid=1).endpoint(1, serial), serial)
        self.assertIsNone(Adoption(self.reactor, {}, first=False, pid=2).endpoint(1, serial))

    def test_adopted_endpoint_keeps_the_family(self) -> None:
        self.assertEqual(AdoptedEndpoint(self.reactor, 5, socket.AF_INET6).family, socket.AF_INET6)


class WorkersSettingTests(SynchronousTestCase):
    def config_file(self, text: str) -> str:
        path = os.path.join(temporary(self), "gateway.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_default_is_one_process(self) -> None:
        self.assertEqual(load(None).workers, 1)

    def test_a_number_auto_and_the_option_over_the_file(self) -> None:
        path = self.config_file("[gateway]\nworkers = 3\n")
        self.assertEqual(load(path).workers, 3)
        self.assertEqual(load(path, workers="2").workers, 2)
        self.assertEqual(load(self.config_file("[gateway]\nworkers = auto\n")).workers, min(cores(), MAX_WORKERS))

    def test_bad_values_name_the_key(self) -> None:
        path = self.config_file("[gateway]\nworkers = many\n")
        with self.assertRaisesRegex(ConfigError, r"^\[gateway\] workers='many' must be a whole number"):
            load(path)
        for value in ("0", "-1", str(MAX_WORKERS + 1)):
            with self.assertRaisesRegex(ConfigError, rf"^--workers='{value}' must be between 1 and {MAX_WORKERS}"):
                load(None, workers=value)
