"""A twisted.web HTTP channel of the ``http`` door over a StringTransport, with a Clock and
the in-memory ACS: raw HTTP/1.1 bytes in, parsed answers out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sipgateway.config import parse_listen
from sipgateway.gateway import Gateway
from sipgateway.settings import ListenerSettings
from sipgateway.transports.httpdoor import HTTPDoorFactory
from tests.fakes import FakeACS

T0 = 1704449700.0  # 2024-01-05 10:15:00 UTC
LOGIN = "9300CNsc1|COpass1|CPMAIN|"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    #: what was on the wire, for assertions about the bytes
    raw: bytes = field(repr=False, default=b"")

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def token(self) -> str | None:
        return self.headers.get("sip2-session")


def parse_answers(data: bytes) -> list[Answer]:
    """Every complete HTTP response in ``data`` (each with a Content-Length, as the door sends)."""
    answers = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete answer: {data!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        answers.append(Answer(status, headers, rest[:length], head + sep + rest[:length]))
        data = rest[length:]
    return answers


class Client:
    """One HTTP connection to the door, from ``address`` (a peer certificate optional)."""

    def __init__(self, door: Door, address: str = "10.0.0.5", certificate=None) -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", address, 50000))
        if certificate is not None:
            self.transport.getPeerCertificate = lambda: certificate
        self.channel = door.site.buildProtocol(IPv4Address("TCP", address, 50000))
        self.channel.makeConnection(self.transport)
        self._seen = 0

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def answers(self) -> list[Answer]:
        """The answers written since the last call."""
        data = self.transport.value()
        new, self._seen = data[self._seen:], len(data)
        return parse_answers(new) if new else []

    def request(self, path: str, body: bytes | str, *, method: str = "POST", headers: dict[str, str] | None = None,
                expect: int | None = 1) -> Answer | None:
        """Send one request; return its answer (``expect=0``: none yet, returns None)."""
        body = body.encode() if isinstance(body, str) else body
        head = [f"{method} {path} HTTP/1.1", "Host: gateway", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.send(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        got = self.answers()
        assert len(got) == (expect or 0), got
        return got[0] if got else None

    def wise(self, message: str, token: str = "", **kw) -> Answer:
        return self.request("/sip2https/services", json.dumps({"sip2request": message, "token": token}), **kw)

    def raw(self, message: str, token: str | None = None, **kw) -> Answer:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token:
            headers["Sip2-Session"] = token
        return self.request("/sip2", message, headers=headers, **kw)

    def mediator(self, obj: dict, token: str | None = None, **kw) -> Answer:
        return self.request("/sip2/json", json.dumps(obj), headers={"Sip2-Session": token} if token else None, **kw)


class Door:
    """The door of one ``http`` listener on a Clock, with the in-memory ACS."""

    def __init__(self, listen: str = "http:tcp:0", settings: ListenerSettings | None = None, **gateway) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.acs = FakeACS()
        self.gateway = Gateway(acs=self.acs, reactor=self.clock, acs_timeout=5.0, **gateway)
        self.settings = settings or parse_listen(listen).settings
        self.site = HTTPDoorFactory(self.gateway, self.settings)
        self.tunnels = self.site.tunnels

    def client(self, address: str = "10.0.0.5", certificate=None) -> Client:
        return Client(self, address, certificate)

    def login(self, client: Client | None = None) -> str:
        """A Wise login; its token."""
        answer = (client or self.client()).wise(LOGIN)
        assert answer.status == 200 and answer.json["sip2response"] == "941", answer
        return answer.json["token"]
