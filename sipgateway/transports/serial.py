"""Serial door: an RS-232 line (or USB adapter) served as one permanent connection.

    serial:/dev/ttyS0:baudrate=9600:bytesize=8:parity=N:stopbits=1[:xonxoff=1][:rtscts=1]

Twisted has no serial *server* endpoint, so this is ours. ``listen(factory)`` opens the
device with ``twisted.internet.serialport.SerialPort`` and a protocol from the factory;
the raw SIP protocol runs over it unchanged. When the device cannot be opened (not
plugged in yet, no permission) or goes away (USB adapter unplugged: EIO on read), it is
logged, naming the device, and reopened with a fresh protocol after 1 s, doubling to
60 s, back to 1 s after each successful open. Everything else keeps serving meanwhile.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import serial as pyserial
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IReactorTime,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.internet.serialport import SerialPort
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

FIRST_RETRY = 1.0    # seconds before the first reopen
MAX_RETRY = 60.0     # the doubling stops here
STOP_GRACE = 5.0     # seconds stopListening waits for buffered output (e.g. CTS held low)

BAUDRATES = tuple(pyserial.Serial.BAUDRATES)
BYTESIZES = {"5": pyserial.FIVEBITS, "6": pyserial.SIXBITS, "7": pyserial.SEVENBITS, "8": pyserial.EIGHTBITS}
PARITIES = {"N": pyserial.PARITY_NONE, "E": pyserial.PARITY_EVEN, "O": pyserial.PARITY_ODD,
            "M": pyserial.PARITY_MARK, "S": pyserial.PARITY_SPACE}
STOPBITS = {"1": pyserial.STOPBITS_ONE, "1.5": pyserial.STOPBITS_ONE_POINT_FIVE, "2": pyserial.STOPBITS_TWO}
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off", ""}
_KEYS = ("baudrate", "bytesize", "parity", "stopbits", "xonxoff", "rtscts")


class SerialConfigError(ValueError):
    """A ``serial:`` endpoint string is wrong; the message names the key and the allowed values."""


@implementer(IAddress)
@dataclass(frozen=True)
class SerialAddress:
    """The address of a serial line: its device name (``name``, as UNIX addresses have)."""

    name: str

    def __str__(self) -> str:
        return f"serial:{self.name}"


@dataclass(frozen=True)
class LineSettings:
    baudrate: int = 9600
    bytesize: int = pyserial.EIGHTBITS
    parity: str = pyserial.PARITY_NONE
    stopbits: float = pyserial.STOPBITS_ONE
    xonxoff: bool = False
    rtscts: bool = False

    def __post_init__(self) -> None:
        if self.baudrate not in BAUDRATES:
            raise SerialConfigError(f"serial endpoint: baudrate={self.baudrate!r} is not a standard rate "
                                    f"(one of {', '.join(map(str, BAUDRATES))})")
        if self.bytesize not in BYTESIZES.values():
            raise SerialConfigError(f"serial endpoint: bytesize={self.bytesize!r} must be 5, 6, 7 or 8")
        if self.parity not in PARITIES.values():
            raise SerialConfigError(f"serial endpoint: parity={self.parity!r} must be N, E, O, M or S")
        if self.stopbits not in STOPBITS.values():
            raise SerialConfigError(f"serial endpoint: stopbits={self.stopbits!r} must be 1, 1.5 or 2")

    def __str__(self) -> str:
        flow = [name for name, on in (("xonxoff", self.xonxoff), ("rtscts", self.rtscts)) if on]
        return (f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits:g}"
                + (f" ({', '.join(flow)})" if flow else ""))


class _SerialTransport(SerialPort):
    """A SerialPort that has an address (the raw protocol logs its peer) and reports its end."""

    def __init__(self, protocol, device: str, reactor, line: LineSettings, on_lost) -> None:
        self._address = SerialAddress(device)
        self._on_lost = on_lost
        #: the protocol (the session) asked to close, as opposed to the device going away
        self.closed_by_protocol = False
        super().__init__(protocol, device, reactor, baudrate=line.baudrate, bytesize=line.bytesize,
                         parity=line.parity, stopbits=line.stopbits, xonxoff=line.xonxoff, rtscts=line.rtscts)

    def getPeer(self) -> SerialAddress:
        return self._address

    def getHost(self) -> SerialAddress:
        return self._address

    def loseConnection(self) -> None:
        self.closed_by_protocol = True
        super().loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        try:
            super().connectionLost(reason)
        finally:
            self._on_lost(self, reason)


@implementer(IListeningPort)
class SerialListeningPort:
    """Keeps one protocol connected to the device for as long as it is listening."""

    log = Logger()

    def __init__(self, device: str, line: LineSettings, factory, reactor, clock: IReactorTime) -> None:
        self.device = device
        self.line = line
        self.factory = factory
        self.reactor = reactor
        self.clock = clock
        self.transport: _SerialTransport | None = None
        self.delay = FIRST_RETRY  # the wait before the next reopen
        self.opens = 0            # successful opens so far
        self._retry = None
        self._listening = False
        self._stopped: Deferred | None = None
        self._force = None

    # IListeningPort
    def startListening(self) -> None:
        if self._listening:
            return
        self._listening = True
        self.factory.doStart()
        self._open()

    def stopListening(self) -> Deferred:
        if not self._listening:
            return succeed(None)
        self._listening = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        transport = self.transport
        if transport is None:
            self.factory.doStop()
            return succeed(None)
        self._stopped = Deferred()
        transport.loseConnection()
        if self.transport is not None:  # still flushing: don't let a blocked line hang shutdown
            self._force = self.clock.callLater(STOP_GRACE, self._force_close, transport)
        return self._stopped

    def getHost(self) -> SerialAddress:
        return SerialAddress(self.device)

    # opening and reopening
    def _open(self) -> None:
        self._retry = None
        address = SerialAddress(self.device)
        protocol = self.factory.buildProtocol(address)
        if protocol is None:
            self.log.warn("serial {device}: the listener refused the line; retrying in {delay:g} s",
                          device=self.device, delay=self.delay)
            self._schedule()
            return
        try:
            self.transport = _SerialTransport(protocol, self.device, self.reactor, self.line, self._lost)
        except (pyserial.SerialException, OSError, ValueError) as e:
            self.transport = None
            self.log.warn("serial {device}: cannot open: {error}{hint}; retrying in {delay:g} s",
                          device=self.device, error=e, hint=_hint(e), delay=self.delay)
            self._schedule()
            return
        self.opens += 1
        self.delay = FIRST_RETRY
        self.log.info("serial {device}: open at {line}", device=self.device, line=self.line)

    def _schedule(self) -> None:
        self._retry = self.clock.callLater(self.delay, self._open)
        self.delay = min(self.delay * 2, MAX_RETRY)

    def _lost(self, transport: _SerialTransport, reason: Failure) -> None:
        self.transport = None
        if self._force is not None and self._force.active():
            self._force.cancel()
        self._force = None
        if self._stopped is not None:
            stopped, self._stopped = self._stopped, None
            self.log.info("serial {device}: closed", device=self.device)
            self.factory.doStop()
            stopped.callback(None)
            return
        if not self._listening:
            return
        if transport.closed_by_protocol:
            self.log.info("serial {device}: the session closed the line; reopening in {delay:g} s",
                          device=self.device, delay=self.delay)
        else:
            # A hang-up (EPOLLHUP) arrives as a clean close; a read error (EIO) as a lost one.
            why = "hang-up" if reason.check(ConnectionDone) else reason.getErrorMessage()
            self.log.warn("serial {device}: lost the device ({why}); reopening in {delay:g} s",
                          device=self.device, why=why, delay=self.delay)
        self._schedule()

    def _force_close(self, transport: _SerialTransport) -> None:
        self._force = None
        self.log.warn("serial {device}: output not drained after {s:g} s; closing anyway",
                      device=self.device, s=STOP_GRACE)
        transport.stopReading()
        transport.stopWriting()
        transport.connectionLost(Failure(ConnectionDone("closed while output was still buffered")))


def _hint(error: Exception) -> str:
    code = getattr(error, "errno", None)
    if code == errno.EACCES or "Permission denied" in str(error):
        return " (give the gateway's user access: add it to the 'dialout' group, or a udev rule)"
    if code == errno.ENOENT or "No such file" in str(error):
        return " (not plugged in? see dmesg and /dev/serial/by-id/)"
    return ""


@implementer(IStreamServerEndpoint)
class SerialServerEndpoint:
    """``listen`` opens the device (or keeps trying) and fires with a ``SerialListeningPort``.

    ``clock`` schedules the reopening (default: the reactor); tests pass a ``Clock``."""

    def __init__(self, reactor, device: str, baudrate: int = 9600, bytesize: int = 8, parity: str = "N",
                 stopbits: float = 1, xonxoff: bool = False, rtscts: bool = False,
                 clock: IReactorTime | None = None) -> None:
        if not device:
            raise SerialConfigError("serial endpoint: give the device, e.g. serial:/dev/ttyS0:baudrate=9600")
        self.reactor = reactor
        self.device = device
        self.line = LineSettings(baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits,
                                 xonxoff=xonxoff, rtscts=rtscts)
        self.clock = clock if clock is not None else reactor

    def listen(self, protocolFactory) -> Deferred:
        port = SerialListeningPort(self.device, self.line, protocolFactory, self.reactor, self.clock)
        port.startListening()
        return succeed(port)


def _choice(key: str, value: str, table: dict, allowed: str):
    try:
        return table[value.upper()]
    except KeyError:
        raise SerialConfigError(f"serial endpoint: {key}={value!r} must be {allowed}") from None


def _flag(key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise SerialConfigError(f"serial endpoint: {key}={value!r} must be 1 or 0")


def parse_serial_endpoint(reactor, *args: str, **kwargs: str) -> SerialServerEndpoint:
    """Build a ``SerialServerEndpoint`` from the parts of a ``serial:...`` endpoint string."""
    if len(args) != 1:
        raise SerialConfigError("serial endpoint: give exactly one device, e.g. "
                                "serial:/dev/ttyS0:baudrate=9600 (escape a ':' in the device name as '\\:')")
    unknown = sorted(set(kwargs) - set(_KEYS))
    if unknown:
        raise SerialConfigError(f"serial endpoint: unknown option {unknown[0]!r} (known: {', '.join(_KEYS)})")
    raw_rate = kwargs.get("baudrate", "9600")
    try:
        baudrate = int(raw_rate)
    except ValueError:
        raise SerialConfigError(f"serial endpoint: baudrate={raw_rate!r} is not a whole number") from None
    return SerialServerEndpoint(
        reactor, args[0],
        baudrate=baudrate,
        bytesize=_choice("bytesize", kwargs.get("bytesize", "8"), BYTESIZES, "5, 6, 7 or 8"),
        parity=_choice("parity", kwargs.get("parity", "N"), PARITIES, "N, E, O, M or S"),
        stopbits=_choice("stopbits", kwargs.get("stopbits", "1"), STOPBITS, "1, 1.5 or 2"),
        xonxoff=_flag("xonxoff", kwargs.get("xonxoff", "0")),
        rtscts=_flag("rtscts", kwargs.get("rtscts", "0")),
    )


@implementer(IPlugin, IStreamServerEndpointStringParser)
class SerialEndpointParser:
    """The ``serial:`` server endpoint string parser (registered in twisted/plugins)."""

    prefix = "serial"

    def parseStreamServer(self, reactor, *args, **kwargs):
        return parse_serial_endpoint(reactor, *args, **kwargs)
