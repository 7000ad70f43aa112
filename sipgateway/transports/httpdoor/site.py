"""The HTTP door's twisted.web ``Site``: bounded bodies, no access log, no tracebacks.

A body longer than the listener's ``max_body`` is not stored: as soon as its length (the
Content-Length, or the chunks so far) passes the bound, the client gets 413 and the
connection is closed, so nobody can make the gateway read a gigabyte.  twisted.web bounds
the request line and headers itself (16 KiB).  Its access log would write a line per
request into the gateway's log; the sessions log what matters instead.
"""

from __future__ import annotations

from io import BytesIO

from twisted.logger import Logger
from twisted.web.server import Request, Site

from sipgateway.transports.httpdoor import shapes

#: seconds an idle keep-alive connection stays open (HTTP sessions outlive connections)
KEEPALIVE_TIMEOUT = 300


class BoundedRequest(Request):
    """A request whose body is kept only up to the site's ``max_body`` bytes."""

    log = Logger()
    too_large = False

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - twisted.web's name
        self.content = BytesIO()
        if length is not None and length > self.channel.site.max_body:
            self._refuse(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - twisted.web's name
        if self.too_large:
            return
        if self.content.tell() + len(data) > self.channel.site.max_body:
            self._refuse(None)
            return
        self.content.write(data)

    def process(self) -> None:
        if not self.too_large:  # else answered already, and the connection is closing
            super().process()

    def _refuse(self, length: int | None) -> None:
        self.too_large = True
        self.content = BytesIO()
        site, channel = self.channel.site, self.channel
        body = shapes.error_body(f"the body is longer than the listener's max_body ({site.max_body} bytes)")
        peer = channel.transport.getPeer()
        site.tunnels.repeated.log(self.log.warn, "body too large", f"{site.settings.name} "
                                  f"{getattr(peer, 'host', peer)}", "HTTP 413: a body of {n} bytes "
                                  "(listener setting 'max_body'); connection closed",
                                  n=length if length is not None else f"more than {site.max_body}")
        channel.transport.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        channel.loseConnection()


class SIP2Site(Site):
    """The Site of one ``http`` listener."""

    requestFactory = BoundedRequest
    displayTracebacks = False
    noisy = False

    def __init__(self, resource, tunnels, max_body: int, reactor) -> None:
        super().__init__(resource, parsePOSTFormSubmission=False, timeout=KEEPALIVE_TIMEOUT, reactor=reactor)
        self.tunnels = tunnels
        self.settings = tunnels.settings
        self.max_body = max_body

    def log(self, request) -> None:
        """No access log: a line per request would cost more than the request."""

    def stopFactory(self) -> None:  # noqa: N802 - Twisted's name
        super().stopFactory()
        self.tunnels.end_all()
