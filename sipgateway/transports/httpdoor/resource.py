"""The HTTP door's one resource: three paths, POST only, every answer JSON or SIP2 text.

==========================  ==========================  ============================================
path                        body                        session carried in
==========================  ==========================  ============================================
``/sip2https/services``     OCLC Wise's JSON tunnel     the body's ``token``
``/sip2``                   the message, text/plain     the ``Sip2-Session`` header
``/sip2/json``              SIP2Mediator's JSON         the ``Sip2-Session`` header
==========================  ==========================  ============================================

A SIP2 answer is HTTP 200, whatever it says (a 940 too).  HTTP errors carry ``{"error":
"..."}``: 400 a body that cannot be read (naming the problem), 401 an unknown or expired
session (the client logs in again with a 93), 404 another path, 405 another method
(``{"error": "Method not allowed"}`` as Wise answers), 413 a body over ``max_body``, 429
more requests waiting on one session than a session queues, 503 a session that ended
before it answered, 500 a bug (logged, never a traceback to the client).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from sipgateway.config.http import HTTPOptions
from sipgateway.sip2 import Message, SIP2Error, parse
from sipgateway.transports.httpdoor import shapes
from sipgateway.transports.httpdoor.clients import Client, client_of
from sipgateway.transports.httpdoor.shapes import BadBody
from sipgateway.transports.httpdoor.tunnels import SessionEnded, Tunnel, Tunnels

WISE_PATH, RAW_PATH, JSON_PATH = b"/sip2https/services", b"/sip2", b"/sip2/json"
SESSION_HEADER = b"Sip2-Session"
JSON_TYPE = b"application/json"
TEXT_TYPE = b"text/plain; charset=utf-8"
NOT_ALLOWED = "Method not allowed"
UNKNOWN_SESSION = "unknown or expired session; log in again with a 93"


class SIP2Resource(Resource):
    isLeaf = True
    log = Logger()

    def __init__(self, tunnels: Tunnels, options: HTTPOptions) -> None:
        super().__init__()
        self.tunnels = tunnels
        self.proxies = options.trusted_proxies
        self.max_line = tunnels.settings.max_line
        self._routes = {WISE_PATH: self._wise, RAW_PATH: self._raw, JSON_PATH: self._mediator}

    def render(self, request) -> bytes | int:
        route = self._routes.get(request.path)
        if route is None:
            return error(request, 404, f"no such path; POST to {', '.join(p.decode() for p in self._routes)}")
        if request.method != b"POST":
            request.setHeader(b"Allow", b"POST")
            return error(request, 405, NOT_ALLOWED)
        client = client_of(request, self.proxies)
        try:
            return route(request, client)
        except BadBody as e:
            self.tunnels.repeated.log(self.log.info, "bad request body", self._who(client),
                                      "HTTP 400 for {path}: {why}", path=request.path.decode("ascii", "replace"),
                                      why=str(e))
            return error(request, 400, str(e))

    def _who(self, client: Client) -> str:
        return f"{self.tunnels.settings.name} {client.peer}"

    # --- the three shapes ---------------------------------------------------------------

    def _wise(self, request, client: Client) -> bytes | int:
        text, token = shapes.wise_request(request.content.read())
        tunnel = self._tunnel(request, client, token, text)
        if not isinstance(tunnel, Tunnel):
            return tunnel
        d = self._send(tunnel, text)
        return self._answer(request, tunnel, d, lambda reply, kept: (JSON_TYPE, shapes.wise_response(reply, kept or ""),
                                                                     None))

    def _raw(self, request, client: Client) -> bytes | int:
        text = shapes.raw_request(request.content.read(), request.getHeader(b"content-type"))
        tunnel = self._tunnel(request, client, _header_token(request), text)
        if not isinstance(tunnel, Tunnel):
            return tunnel
        d = self._send(tunnel, text)
        return self._answer(request, tunnel, d, lambda reply, kept: (TEXT_TYPE, reply.encode("utf-8"), kept))

    def _mediator(self, request, client: Client) -> bytes | int:
        text = shapes.mediator_request(request.content.read())
        token = _header_token(request)
        if text[:2] == "XS":  # SIP2Mediator's "end session"
            tunnel = self.tunnels.find(token, client) if token else None
            if tunnel is not None:
                tunnel.end()
            return _body(request, 200, JSON_TYPE, shapes.END_SESSION_REPLY)
        tunnel = self._tunnel(request, client, token, text)
        if not isinstance(tunnel, Tunnel):
            return tunnel
        try:
            msg: Message | None = parse(text.encode("utf-8"), verify=False)
        except SIP2Error:
            msg = None  # the session answers it as it answers such a line: 96
        if msg is not None:
            d = self._send(tunnel, text, msg)
        else:
            encoding = tunnel.session.out.encoding
            d = self._send(tunnel, text).addCallback(lambda reply: parse(reply.encode(encoding), encoding,
                                                                          verify=False))
        return self._answer(request, tunnel, d, lambda reply, kept: (JSON_TYPE, shapes.mediator_response(reply),
                                                                     kept))

    # --- the steps they share -----------------------------------------------------------

    def _tunnel(self, request, client: Client, token: str, text: str) -> Tunnel | bytes:
        """The tunnel of ``token``, or a new one (no token, or a 93 with one that is not
        known: a client logging in again); the answer to give instead (bytes) when neither."""
        if token:
            tunnel = self.tunnels.find(token, client)
            if tunnel is not None:
                if tunnel.full:
                    self.tunnels.repeated.log(self.log.warn, "too many waiting", tunnel.session.who,
                                              "HTTP 429: {n} requests waiting for replies", n=tunnel.pending)
                    return error(request, 429, "too many requests waiting on this session; wait for their replies")
                return tunnel
            if text[:2] != "93":
                self.tunnels.repeated.log(self.log.info, "unknown session", self._who(client),
                                          "HTTP 401: request for an unknown or expired session")
                request.setHeader(b"WWW-Authenticate", b'SIP2 login="93"')
                return error(request, 401, UNKNOWN_SESSION)
        return self.tunnels.open(client)

    def _send(self, tunnel: Tunnel, text: str, msg: Message | None = None) -> Deferred:
        """Hand the request to the session (a line, or ``msg``); BadBody when it cannot carry it
        (a new tunnel then ends)."""
        encoding = tunnel.session.out.encoding
        try:
            data = text.encode(encoding)
            if len(data) > self.max_line:
                raise BadBody(f"the SIP2 message is {len(data)} bytes, more than the listener's max_line "
                              f"({self.max_line})")
        except UnicodeEncodeError as e:
            problem = BadBody(f"character {e.start + 1} of the SIP2 message cannot be written in the session's "
                              f"character set ({encoding})")
        except BadBody as e:
            problem = e
        else:
            return tunnel.message(msg) if msg is not None else tunnel.line(data)
        if tunnel.token is None:
            tunnel.end()
        raise problem

    def _answer(self, request, tunnel: Tunnel, d: Deferred, shape) -> int:
        """Answer ``request`` when the session replies: ``shape(reply, token)`` gives (content
        type, body, token for the Sip2-Session header or None)."""
        def replied(reply: str | Message) -> None:
            gone = request.channel is None  # the client went away: nobody to give a token to
            kept = self.tunnels.settle(tunnel, not gone)
            if not gone:
                content_type, body, header = shape(reply, kept)
                _body(request, 200, content_type, body, header, finish=True)

        def failed(failure: Failure) -> None:
            if tunnel.token is None:
                self.tunnels.settle(tunnel, False)
            if request.channel is None:
                return
            if failure.check(SessionEnded):
                if tunnel.token is not None:  # a kept session ended (idle, made room): log in again
                    error(request, 401, UNKNOWN_SESSION, finish=True)
                else:
                    error(request, 503, "the session ended before it answered; try again", finish=True)
                return
            self.log.failure("{peer}: HTTP request failed", failure, peer=tunnel.session.who)
            error(request, 500, "internal error; the gateway's log has the details", finish=True)

        d.addCallbacks(replied, failed).addErrback(
            lambda f: self.log.failure("{peer}: answering an HTTP request failed", f, peer=tunnel.session.who))
        return NOT_DONE_YET


def _header_token(request) -> str:
    raw = request.getHeader(SESSION_HEADER)
    return raw.decode("latin-1").strip() if raw else ""


def _body(request, code: int, content_type: bytes, body: bytes, token: str | None = None,
          finish: bool = False) -> bytes:
    """Set up the answer; with ``finish`` write it and finish the request (asynchronous answers)."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.setHeader(b"Cache-Control", b"no-store")  # tokens and patron data stay out of caches
    if token is not None:
        request.setHeader(SESSION_HEADER, token.encode("ascii"))
    if finish and request.channel is not None and request.startedWriting == 0:
        request.write(body)
        request.finish()
    return body


def error(request, code: int, message: str, *, finish: bool = False) -> bytes:
    """A JSON error answer: returned (to render's caller) or, with ``finish``, written now."""
    return _body(request, code, JSON_TYPE, shapes.error_body(message), finish=finish)
