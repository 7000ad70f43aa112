"""The admin listener's HTTP resources (twisted.web)::

    GET /healthz   200 "ok" while the reactor runs
    GET /readyz    200 "ready", or 503 with a one-line reason (readiness.py)
    GET /metrics   Prometheus text (or OpenMetrics when asked for by Accept) (metrics.py)
    GET /sessions  JSON list of the live sessions (sessioninfo.py)

With a user and password configured every path needs them (HTTP basic authentication);
failures get 401 and are logged, rate-limited.  Nothing here writes an access log line: a
scrape every 15 s would bury the gateway's own lines.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from sipgateway.admin.readiness import Readiness
from sipgateway.repeatlog import RepeatedLines
from sipgateway.sessioninfo import session_view

TEXT = b"text/plain; charset=utf-8"
REALM = "sipgateway admin"
PATHS = (b"healthz", b"readyz", b"metrics", b"sessions")


class _Text(Resource):
    isLeaf = True

    def __init__(self, code: int, body: str, headers: dict[bytes, bytes] | None = None) -> None:
        super().__init__()
        self.code, self.body, self.headers = code, body, headers or {}

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 - twisted.web's name
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", TEXT)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return (self.body + "\n").encode("utf-8")

    render_POST = render_PUT = render_DELETE = render_GET  # noqa: N815 - the error, whatever the method


class Health(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", TEXT)
        return b"ok\n"


class Ready(Resource):
    isLeaf = True

    def __init__(self, readiness: Readiness) -> None:
        super().__init__()
        self.readiness = readiness

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", TEXT)
        why = self.readiness.problem()
        if why is None:
            return b"ready\n"
        request.setResponseCode(503)
        return (" ".join(why.split()) + "\n").encode("utf-8")  # one line, whatever the reason holds


class MetricsPage(Resource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return encoder(self.registry)


class Sessions(Resource):
    isLeaf = True

    def __init__(self, gateway: Any) -> None:
        super().__init__()
        self.gateway = gateway

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        views = sorted((session_view(s) for s in list(self.gateway.sessions)),
                       key=lambda v: (v["listener"], v["peer"]))
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(views, indent=1).encode("utf-8") + b"\n"


class AdminRoot(Resource):
    """Routes the four paths, behind HTTP basic authentication when ``user`` is set."""

    log = Logger()

    def __init__(self, children: dict[bytes, Resource], clock: IReactorTime, user: str = "",
                 password: str = "") -> None:
        super().__init__()
        self.routes = children
        self._user, self._password = user.encode("utf-8"), password.encode("utf-8")
        self.repeated = RepeatedLines(clock)

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:  # noqa: N802
        if self._user and not self._authorized(request):
            return _Text(401, "authentication required", {b"www-authenticate": f'Basic realm="{REALM}"'.encode()})
        child = self.routes.get(path)
        if child is None or request.postpath:
            return _Text(404, "not found; the admin listener serves " + ", ".join("/" + p.decode() for p in PATHS))
        return child

    def _authorized(self, request: Request) -> bool:
        # both compared, in constant time: the answer says nothing of which was wrong
        user_ok = hmac.compare_digest(request.getUser(), self._user)
        password_ok = hmac.compare_digest(request.getPassword(), self._password)
        if user_ok and password_ok:
            return True
        peer = request.getClientAddress()
        who = f"admin {getattr(peer, 'host', peer)}"
        self.repeated.log(self.log.warn, "admin authentication failed", who,
                          "{what} for {path}; answered 401", what="no credentials" if not request.getUser()
                          else "wrong user or password", path=request.path.decode("latin-1")[:100])
        return False


class AdminSite(Site):
    """No access log (see the module's doc); idle connections closed after ``timeout``."""

    def log(self, request: Request) -> None:
        pass
