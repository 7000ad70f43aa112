"""Raw SIP2 over a byte stream (TCP, TLS, a serial line): framing on CR, LF or CRLF."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from sipgateway.gateway import Gateway
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from sipgateway.transports.directwrite import direct_write
from sipgateway.transports.framing import LineSplitter
from sipgateway.transports.limits import peer_host


def describe_peer(address: IAddress | None) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    name = getattr(address, "name", None)  # serial ports, UNIX sockets
    return str(name) if name else str(address)


class LineDoor:
    """What the doors that read SIP2 lines share (raw, telnet): complete lines go to the
    session, a line longer than ``max_line`` closes the connection, and a client that does
    not read its replies is not read from until it does (an IPushProducer registered with
    ``byte_transport``)."""

    log: Logger
    peer: str
    settings: ListenerSettings
    session: Session | None
    splitter: LineSplitter

    @property
    def byte_transport(self) -> Any:
        raise NotImplementedError

    def lines_received(self, data: bytes) -> None:
        session = self.session
        assert session is not None  # connected
        lines = self.splitter.feed(data)
        if lines is None:
            self.log.warn("{peer}: line longer than {n} bytes (listener setting 'max_line'); closing",
                          peer=self.peer, n=self.settings.max_line)
            session.close()
            return
        for line in lines:
            session.line_received(line)

    def pauseProducing(self) -> None:
        # called again for every reply written while the buffer is full: rate-limited
        assert self.session is not None
        self.session.repeated.log(self.log.warn, "not reading its replies", self.peer,
                                  "not reading its replies; stopped reading from it until it does")
        self.byte_transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.byte_transport.resumeProducing()

    def stopProducing(self) -> None:
        pass


class SIPProtocol(LineDoor, Protocol):
    log = Logger()

    def __init__(self, gateway: Gateway, settings: ListenerSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.splitter = LineSplitter(settings.max_line)
        self.session: Session | None = None
        self.peer = ""
        self._tls_checked = False

    def connectionMade(self) -> None:
        self.peer = f"{self.settings.name} {describe_peer(self.transport.getPeer())}"
        # a reply goes out at once when nothing waits to be sent (directwrite.py)
        self.session = Session(self.gateway, self.settings, direct_write(self.transport),
                               self.transport.loseConnection, self.peer,
                               address=peer_host(self.transport.getPeer()))
        self.log.info("{peer}: connected", peer=self.peer)
        # We only write in answer to what we read: when the peer stops reading our replies
        # and the transport's buffer fills, stop reading from it (see pauseProducing).
        self.transport.registerProducer(self, True)
        if self.settings.account:
            self.session.bind(self.settings.account, "listener setting 'account'")

    def _check_tls(self) -> None:
        self._tls_checked = True
        if not ISSLTransport.providedBy(self.transport):
            return
        from sipgateway.transports.tls import peer_subject

        subject = peer_subject(self.transport)
        self.peer = f"{self.peer} [{subject or 'no client certificate'}]"
        if self.session is not None:
            self.session.peer = self.peer
        self.log.info("{peer}: TLS established", peer=self.peer)
        account = self.settings.cert_accounts.get(subject) if subject else None
        if account and not self.settings.account:
            self.session.bind(account, f"client certificate {subject}")

    def dataReceived(self, data: bytes) -> None:
        if not self._tls_checked:
            self._check_tls()
        self.lines_received(data)

    @property
    def byte_transport(self) -> Any:
        return self.transport

    def connectionLost(self, reason=None) -> None:
        if self.session is not None:
            self.session.connection_lost()
        if self.splitter.pending:
            self.log.info("{peer}: disconnected in the middle of a message ({n} bytes dropped)",
                          peer=self.peer, n=self.splitter.pending)
        else:
            self.log.info("{peer}: disconnected", peer=self.peer)


class SIPFactory(Factory):
    def __init__(self, gateway: Gateway, settings: ListenerSettings) -> None:
        self.gateway = gateway
        self.settings = settings

    def buildProtocol(self, addr: IAddress) -> SIPProtocol:
        p = SIPProtocol(self.gateway, self.settings)
        p.factory = self
        return p
