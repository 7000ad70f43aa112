"""The serial: door on a pseudo-terminal pair (no hardware): a message in, the reply out;
a device missing at start is logged and retried with backoff; a device that goes away is
reopened with a fresh protocol; stopListening closes it. Reopen timing runs on a Clock."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipgateway.transports.serial import (
    FIRST_RETRY,
    MAX_RETRY,
    STOP_GRACE,
    LineSettings,
    SerialAddress,
    SerialConfigError,
    SerialEndpointParser,
    SerialServerEndpoint,
    parse_serial_endpoint,
)
from tests.transports.pty_pair import PtyPair, link


class LineEcho(Protocol):
    """Answers each CR-ended line with ``echo:<line>`` CR."""

    def __init__(self) -> None:
        self.buffer = b""
        self.lost: Deferred = Deferred()
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r", 1)
            if line == b"quit":
                self.transport.loseConnection()
            elif line == b"flood":
                self.transport.write(b"x" * 4_000_000)
            else:
                self.transport.write(b"echo:" + line + b"\r")

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason
        self.lost.callback(None)


class EchoFactory(Factory):
    def __init__(self) -> None:
        self.built: list[LineEcho] = []
        self.addresses: list = []
        self.started = self.stopped = 0

    def buildProtocol(self, addr):
        self.addresses.append(addr)
        p = LineEcho()
        p.factory = self
        self.built.append(p)
        return p

    def doStart(self) -> None:
        self.started += 1

    def doStop(self) -> None:
        self.stopped += 1


class SerialPtyTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sipgateway-serial-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.device = os.path.join(self.dir, "ttyUSB-sorter")
        self.clock = Clock()
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def pair(self) -> PtyPair:
        pair = PtyPair(reactor)
        self.addCleanup(pair.close)
        link(self.device, pair.slave_name)
        return pair

    @inlineCallbacks
    def listen(self, factory: Factory | None = None, **line):
        factory = factory or EchoFactory()
        endpoint = SerialServerEndpoint(reactor, self.device, clock=self.clock, **line)
        port = yield endpoint.listen(factory)
        self.addCleanup(self.stop, port)
        return factory, port

    def stop(self, port) -> Deferred:
        d = port.stopListening()
        self.clock.advance(STOP_GRACE)  # never wait on a blocked line in cleanup
        return d

    def logged(self) -> list[str]:
        return [formatEvent(e) for e in self.events if "serial" in e.get("log_namespace", "")]

    def next_retry(self) -> float:
        calls = self.clock.getDelayedCalls()
        self.assertEqual(len(calls), 1, "exactly one reopen must be scheduled")
        return calls[0].getTime() - self.clock.seconds()

    @inlineCallbacks
    def test_message_in_reply_out(self):
        pair = self.pair()
        factory, port = yield self.listen(baudrate=19200, parity="E", bytesize=7)
        pair.write(b"hello\r")
        reply = yield pair.read_until(b"\r")
        self.assertEqual(reply, b"echo:hello\r")
        self.assertEqual(factory.addresses, [SerialAddress(self.device)])
        transport = factory.built[0].transport
        self.assertEqual(transport.getPeer(), SerialAddress(self.device))
        self.assertEqual(transport._serial.baudrate, 19200)
        self.assertEqual(transport._serial.bytesize, 7)
        self.assertEqual(transport._serial.parity, "E")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIn(f"serial {self.device}: open at 19200 7E1", self.logged())

    @inlineCallbacks
    def test_missing_device_at_start_is_logged_and_retried_with_backoff(self):
        factory, port = yield self.listen()
        self.assertEqual(factory.started, 1)
        self.assertEqual(len(factory.built), 1)  # one protocol built for the try, never connected
        self.assertIn(f"serial {self.device}: cannot open", self.logged()[0])
        self.assertIn("retrying in 1 s", self.logged()[0])
        delays = []
        for _ in range(8):
            delay = self.next_retry()
            delays.append(delay)
            self.clock.advance(delay)
        self.assertEqual(delays, [1, 2, 4, 8, 16, 32, 60, 60])
        self.assertEqual(len(factory.built), 9)  # a fresh protocol for every try

        pair = self.pair()  # plugged in
        self.clock.advance(self.next_retry())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(port.delay, FIRST_RETRY, "backoff resets after a successful open")
        pair.write(b"after\r")
        reply = yield pair.read_until(b"\r")
        self.assertEqual(reply, b"echo:after\r")
        self.assertIn(f"serial {self.device}: open at 9600 8N1", self.logged())

    @inlineCallbacks
    def test_device_closed_under_it_is_reopened_with_a_fresh_protocol(self):
        first = self.pair()
        factory, port = yield self.listen()
        first.write(b"one\r")
        self.assertEqual((yield first.read_until(b"\r")), b"echo:one\r")
        old = factory.built[0]

        first.close()  # USB adapter unplugged: EIO on the gateway's side
        yield old.lost
        yield deferLater(reactor, 0, lambda: None)  # let SerialPort.connectionLost finish
        self.assertTrue(any(f"serial {self.device}: lost the device" in line for line in self.logged()))
        self.assertEqual(self.next_retry(), FIRST_RETRY)

        # Not back yet: the next try fails and the wait doubles.
        self.clock.advance(FIRST_RETRY)
        self.assertEqual(self.next_retry(), 2 * FIRST_RETRY)

        second = self.pair()  # plugged back in (a new pty behind the same name)
        self.clock.advance(2 * FIRST_RETRY)
        new = factory.built[-1]
        self.assertIsNot(new, old)
        second.write(b"two\r")
        self.assertEqual((yield second.read_until(b"\r")), b"echo:two\r")
        self.assertEqual(port.delay, FIRST_RETRY)

    @inlineCallbacks
    def test_session_closing_the_line_reopens_it(self):
        pair = self.pair()
        factory, port = yield self.listen()
        pair.write(b"quit\r")
        yield factory.built[0].lost
        yield deferLater(reactor, 0, lambda: None)
        self.assertTrue(factory.built[0].reason.check(ConnectionDone))
        self.assertTrue(any(f"serial {self.device}: the session closed the line" in line
                            for line in self.logged()))
        self.assertEqual(self.next_retry(), FIRST_RETRY)
        self.clock.advance(FIRST_RETRY)
        self.assertEqual(len(factory.built), 2)
        pair.write(b"again\r")
        self.assertEqual((yield pair.read_until(b"\r")), b"echo:again\r")

    @inlineCallbacks
    def test_stop_listening_closes_the_line_and_stops_retrying(self):
        pair = self.pair()
        factory, port = yield self.listen()
        pair.write(b"x\r")
        yield pair.read_until(b"\r")
        yield port.stopListening()
        self.assertTrue(factory.built[0].lost.called)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual((factory.started, factory.stopped), (1, 1))
        self.assertIsNone(port.transport)

    @inlineCallbacks
    def test_stop_listening_while_waiting_for_the_device(self):
        factory, port = yield self.listen()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        yield port.stopListening()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual((factory.started, factory.stopped), (1, 1))

    @inlineCallbacks
    def test_stop_does_not_hang_on_output_that_cannot_drain(self):
        pair = self.pair()
        factory, port = yield self.listen()
        pair.write(b"flood\r")  # 4 MB nobody reads: the pty fills, the rest stays buffered
        while not factory.built[0].transport.dataBuffer and not factory.built[0].transport._tempDataBuffer:
            yield deferLater(reactor, 0.01, lambda: None)
        stopped = port.stopListening()
        self.assertFalse(stopped.called)
        self.clock.advance(STOP_GRACE)
        self.assertTrue(stopped.called)
        self.assertTrue(any("output not drained" in line for line in self.logged()))


class SIPOverSerialTests(TestCase):
    """The raw SIP protocol over the serial door, bound to an SC account by the listener."""

    timeout = 20

    @inlineCallbacks
    def test_patron_status_over_the_line(self):
        from sipgateway.gateway import Gateway
        from sipgateway.settings import ListenerSettings
        from sipgateway.transports.raw import SIPFactory
        from tests.fakes import FakeACS

        pair = PtyPair(reactor)
        self.addCleanup(pair.close)
        gateway = Gateway(acs=FakeACS(), reactor=reactor)
        settings = ListenerSettings(name="serial-test", account="sc1", idle_timeout=0, login_timeout=0)
        clock = Clock()
        endpoint = SerialServerEndpoint(reactor, pair.slave_name, clock=clock)
        port = yield endpoint.listen(SIPFactory(gateway, settings))
        pair.write(b"2300120240105    101500AOMAIN|AA100001|AC|AD1234|\r")
        reply = yield pair.read_until(b"\r")
        stopped = port.stopListening()
        clock.advance(STOP_GRACE)
        yield stopped
        self.assertTrue(reply.startswith(b"24"), reply)
        self.assertIn(b"|AEAda Lovelace|", reply)


class EndpointStringTests(SynchronousTestCase):
    def error(self, *args, **kwargs) -> str:
        return str(self.assertRaises(SerialConfigError, parse_serial_endpoint, reactor, *args, **kwargs))

    def test_all_options(self):
        endpoint = parse_serial_endpoint(reactor, "/dev/ttyS0", baudrate="19200", bytesize="7", parity="e",
                                         stopbits="1.5", xonxoff="1", rtscts="yes")
        self.assertEqual(endpoint.device, "/dev/ttyS0")
        self.assertEqual(endpoint.line, LineSettings(baudrate=19200, bytesize=7, parity="E", stopbits=1.5,
                                                     xonxoff=True, rtscts=True))
        self.assertEqual(str(endpoint.line), "19200 7E1.5 (xonxoff, rtscts)")

    def test_defaults_are_9600_8N1_without_flow_control(self):
        endpoint = parse_serial_endpoint(reactor, "/dev/ttyUSB0")
        self.assertEqual(endpoint.line, LineSettings())
        self.assertEqual(str(endpoint.line), "9600 8N1")

    def test_through_twisted_and_the_plugin(self):
        description = r"serial:/dev/serial/by-id/usb-FTDI\:port0:baudrate=2400:parity=O"
        endpoint = serverFromString(reactor, description)
        self.assertIsInstance(endpoint, SerialServerEndpoint)
        self.assertEqual(endpoint.device, "/dev/serial/by-id/usb-FTDI:port0")
        self.assertEqual((endpoint.line.baudrate, endpoint.line.parity), (2400, "O"))
        self.assertEqual(SerialEndpointParser.prefix, "serial")

    def test_errors_name_the_key(self):
        self.assertIn("baudrate=12345 is not a standard rate", self.error("/dev/ttyS0", baudrate="12345"))
        self.assertIn("baudrate='fast' is not a whole number", self.error("/dev/ttyS0", baudrate="fast"))
        self.assertIn("bytesize='9' must be 5, 6, 7 or 8", self.error("/dev/ttyS0", bytesize="9"))
        self.assertIn("parity='X' must be N, E, O, M or S", self.error("/dev/ttyS0", parity="X"))
        self.assertIn("stopbits='3' must be 1, 1.5 or 2", self.error("/dev/ttyS0", stopbits="3"))
        self.assertIn("xonxoff='maybe' must be 1 or 0", self.error("/dev/ttyS0", xonxoff="maybe"))
        self.assertIn("rtscts='2' must be 1 or 0", self.error("/dev/ttyS0", rtscts="2"))
        self.assertIn("unknown option 'baud'", self.error("/dev/ttyS0", baud="9600"))
        self.assertIn("exactly one device", self.error())
        self.assertIn("give the device", self.error(""))

    def test_errors_are_value_errors_for_the_config_layer(self):
        self.assertRaises(ValueError, serverFromString, reactor, "serial:/dev/ttyS0:parity=Q")

    def test_direct_construction_validates(self):
        self.assertRaises(SerialConfigError, SerialServerEndpoint, reactor, "/dev/ttyS0", baudrate=9601)
        self.assertRaises(SerialConfigError, SerialServerEndpoint, reactor, "/dev/ttyS0", stopbits=3)

    def test_address(self):
        self.assertEqual(str(SerialAddress("/dev/ttyS0")), "serial:/dev/ttyS0")
        self.assertEqual(MAX_RETRY, 60.0)
