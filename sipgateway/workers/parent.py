"""The parent process of ``--workers N`` (N > 1): it checks what a single gateway checks at
start-up, binds the shareable listeners' ports (and the admin listener's), and supervises
the workers; it serves no connection itself.

With ``--database sqlite:`` it also runs the one database process every worker sends its
calls to (database.py): one writing connection and one group commit for all of them; each
worker's calls are recorded under its own token, so the writes a dead database process had
are still answered truthfully by each worker.  Lockouts and PIN counters are rows in that
file, so they hold across workers."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.application.service import MultiService, Service
from twisted.internet.defer import succeed
from twisted.logger import Logger

from sipgateway.acs.backends import open_backend
from sipgateway.config import Config, ConfigError
from sipgateway.privileges import RunAs
from sipgateway.transports.backlog import with_backlog
from sipgateway.transports.tls import server_from_string
from sipgateway.workers import generation
from sipgateway.workers.database import DatabaseHost, shared_database
from sipgateway.workers.ports import HeldPort, shareable
from sipgateway.workers.setup import ADMIN_PORT, METRICS_DIR_VARIABLE
from sipgateway.workers.supervisor import Supervisor

log = Logger()


def make_parent(config: Config, reactor, run_as: RunAs = (None, None), source=None) -> MultiService:
    backend = open_backend(config, reactor, run_as)  # a bad database or account stops start-up here
    database = shared_database(backend)  # sqlite: one database process for every worker
    _release(backend)
    top = MultiService()
    held: dict[int | str, HeldPort] = {}
    for index, listener in enumerate(config.listeners):
        try:
            endpoint = server_from_string(reactor, with_backlog(listener.endpoint, listener.backlog))
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise ConfigError(f"listener {listener.settings.name}: bad endpoint {listener.endpoint!r}: {e}") from None
        if shareable(endpoint):
            port = HeldPort(endpoint, listener.settings.name, listener.endpoint)
            port.setServiceParent(top)
            held[index] = port
    if config.admin is not None:
        _hold_admin(config, reactor, top, held)
    shared = RunDirectory(config.workers)
    shared.setServiceParent(top)
    host = DatabaseHost(reactor, database, shared) if database is not None else None
    if host is not None:
        host.setServiceParent(top)  # started before the workers, stopped after them
    supervisor = Supervisor(reactor, config, held, shared=shared)
    shared.supervisor = supervisor
    if host is not None:
        host.supervisor = supervisor
    supervisor.source = source  # each worker reloads as a single gateway does (SIGHUP is forwarded)
    supervisor.setServiceParent(top)
    top.supervisor = supervisor  # type: ignore[attr-defined]  # the admin listener asks it for the workers
    return top


def _hold_admin(config: Config, reactor, top: MultiService, held: dict) -> None:
    """The admin listener's port, bound here as the listeners' are; the workers adopt it (an
    endpoint that cannot be shared: worker 1 alone listens, the others answer it)."""
    listen = config.admin.listen
    try:
        endpoint = server_from_string(reactor, listen)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise ConfigError(f"admin listener: bad endpoint {listen!r}: {e}") from None
    if shareable(endpoint):
        port = HeldPort(endpoint, f"admin ({listen})", listen)
        port.setServiceParent(top)
        held[ADMIN_PORT] = port


def _release(backend) -> None:
    """The backend was opened for its start-up checks only: the workers open their own."""
    from sipgateway.startup import EmbeddedBackend

    if isinstance(backend, EmbeddedBackend):
        backend.acs.close()  # its start-up connection; no database process was started


class RunDirectory(Service):
    """The workers' private directory (mode 0700, made in ``startService`` as the user the
    gateway runs as, removed when it stops): the file of their write counts (generation.py)
    and, for prometheus_client's multiprocess mode, ``metrics/``, named to every worker in
    PROMETHEUS_MULTIPROC_DIR (and set here, for the parent's own /metrics) before any of them
    imports prometheus_client.  An operator's own PROMETHEUS_MULTIPROC_DIR is kept."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.env: dict[str, str] = {}
        self.path: str | None = None
        self.generation: str | None = None
        self.metrics: str | None = None
        #: the shared database process's socket, and the key of its verified-secrets cache
        #: (workers/database.py); None: each worker has its own database process or connections
        self.database: str | None = None
        self.secrets_key: bytes | None = None
        #: the workers (supervisor.py): the directory is removed after they stopped
        self.supervisor = None
        self._set_variable = False

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self.path = tempfile.mkdtemp(prefix="sipgateway-workers-")
        self.generation = os.path.join(self.path, "generation")
        generation.create(self.generation, self.count)
        self.metrics = os.environ.get(METRICS_DIR_VARIABLE)
        if not self.metrics:
            self.metrics = os.path.join(self.path, "metrics")
            os.mkdir(self.metrics, 0o700)
            os.environ[METRICS_DIR_VARIABLE] = self.metrics
            self._set_variable = True
        self.env[METRICS_DIR_VARIABLE] = self.metrics

    def worker_died(self, pid: int) -> None:
        """prometheus_client keeps a dead process's live gauges until told; its counters are
        folded into those of the workers gone before it (admin/workers.py)."""
        from sipgateway.admin.workers import merge_gone

        try:
            merge_gone(self.metrics, pid)
        except OSError as e:  # its figures stay as they are: counted, never twice
            log.error("the figures of worker pid {pid} could not be merged: {e}", pid=pid, e=e)

    def stopService(self):  # noqa: N802
        super().stopService()
        # removed once the workers have exited: until then they use it (their sockets, figures)
        workers = self.supervisor.when_stopped() if self.supervisor is not None else succeed(None)
        return workers.addCallback(lambda _: self._remove())

    def _remove(self) -> None:
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._set_variable:
            os.environ.pop(METRICS_DIR_VARIABLE, None)
