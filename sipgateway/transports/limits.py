"""Connection limits shared by every listener: in total and per client address."""

from __future__ import annotations

from collections import Counter

from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from sipgateway.transports.directwrite import no_delay


def peer_host(address: IAddress | None) -> str:
    return str(getattr(address, "host", None) or getattr(address, "name", None) or address)


class ConnectionCounter:
    """Counts open connections of the whole gateway; one instance shared by all listeners."""

    log = Logger()

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.total = 0
        self.by_address: Counter[str] = Counter()

    def admit(self, host: str, listener: str) -> bool:
        if self.total >= self.max_total:
            self.log.warn("{listener}: refused a connection from {host}: {n} connections open "
                          "([gateway] max_connections)", listener=listener, host=host, n=self.total)
            return False
        if self.by_address[host] >= self.max_per_address:
            self.log.warn("{listener}: refused a connection from {host}: {n} connections from that address "
                          "([gateway] max_connections_per_address)", listener=listener, host=host,
                          n=self.by_address[host])
            return False
        self.total += 1
        self.by_address[host] += 1
        return True

    def release(self, host: str) -> None:
        self.total -= 1
        left = self.by_address[host] - 1
        if left > 0:
            self.by_address[host] = left
        else:
            del self.by_address[host]


class _Limited(ProtocolWrapper):
    passes_writes_through = True   # directwrite.py may write to the connection under it
    admitted = False
    host = ""

    def makeConnection(self, transport) -> None:
        self.host = peer_host(transport.getPeer())
        if not self.factory.counter.admit(self.host, self.factory.listener):
            # Connected but not admitted: close without ever starting a session.
            self.transport = transport
            self.connected = 1
            transport.abortConnection() if hasattr(transport, "abortConnection") else transport.loseConnection()
            return
        self.admitted = True
        no_delay(transport)  # replies go out whole and at once, never behind a delayed ACK (directwrite.py)
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if self.admitted:
            self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason) -> None:
        if self.admitted:
            self.admitted = False
            self.factory.counter.release(self.host)
            super().connectionLost(reason)


class LimitedFactory(WrappingFactory):
    protocol = _Limited

    def __init__(self, wrapped, counter: ConnectionCounter, listener: str) -> None:
        super().__init__(wrapped)
        self.counter = counter
        self.listener = listener

    def logPrefix(self) -> str:
        return self.listener
