"""A worker process: ``python -m sipgateway.workers.child``, started by the parent
(supervisor.py) with its setup on stdin and the shared listening sockets as descriptors.

It runs the gateway exactly as a single process does (``make_service``), except that
shareable listeners adopt the parent's sockets and the others are served by worker 1
alone.  Its log events go to the parent as JSON lines on stdout; SIGTERM and SIGINT stop
it as they stop twistd; SIGHUP is acted on as by a single gateway; the end of stdin (the
parent is gone, even by ``kill -9``) stops it too.
"""

from __future__ import annotations

import os
import signal
import sys

from twisted.internet.abstract import FileDescriptor
from twisted.internet.main import CONNECTION_DONE
from twisted.logger import Logger, globalLogBeginner, jsonFileLogObserver

log = Logger()


class ParentWatch(FileDescriptor):
    """Watches the parent's end of stdin: nothing more is ever sent, so the end of file (a
    hang-up, as epoll reports a pipe whose writer is gone) means the parent is gone."""

    def __init__(self, reactor, fd: int) -> None:
        super().__init__(reactor)
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def doRead(self):  # noqa: N802 - Twisted's name
        if os.read(self.fd, 4096):
            return None  # never sent; ignored
        return CONNECTION_DONE

    def connectionLost(self, reason) -> None:  # noqa: N802
        log.info("the parent process is gone; stopping")
        if self.reactor.running:
            self.reactor.stop()


def share_read_cache(top, path: str, index: int) -> None:
    """Give the embedded ACS's read cache and failed-attempt store the workers' write counts
    (generation.py)."""
    from sipgateway.acs.sqlite.attemptstore import SQLiteAttempts
    from sipgateway.acs.sqlite.readcache import ReadCache
    from sipgateway.workers.generation import Generation

    generation = None
    for service in top:
        for kept in (getattr(getattr(service, "acs", None), "cache", None), getattr(service, "attempts", None)):
            if isinstance(kept, ReadCache | SQLiteAttempts):
                generation = generation or Generation(path, index)
                kept.shared = generation.view()


def share_database(top, reactor, path: str, secrets_key: bytes | None) -> None:
    """The embedded ACS's runner sends its calls to the database process the parent runs
    for every worker (acs/sqlite/sharedclient.py) instead of starting its own."""
    from sipgateway.acs.sqlite.sharedclient import share
    from sipgateway.workers.database import shared_database

    for service in top:
        acs = shared_database(service)
        if acs is not None:
            share(acs.runner, reactor, path, secrets_key or acs.ctx.secrets.key)


def main() -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the gateway's own handler is in place
    from sipgateway.workers.setup import read_setup

    try:
        setup = read_setup(0)
    except (ValueError, OSError) as e:
        print(f"worker: no setup from the parent ({e}); exiting", file=sys.stderr)
        return 2
    # log events go to the parent on a private copy of stdout; fd 1 becomes stderr, so a
    # stray print() cannot break a line of JSON
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    globalLogBeginner.beginLoggingTo([jsonFileLogObserver(out)], redirectStandardIO=False)

    from twisted.internet import reactor

    from sipgateway.service import StartupError, make_service
    from sipgateway.workers.peers import Peers
    from sipgateway.workers.ports import Adoption

    peers = Peers(reactor, setup.run_dir, setup.index, setup.count, os.getpid()) if setup.run_dir else None
    adoption = Adoption(reactor, setup.fds, first=setup.index == 1, pid=os.getpid(), peers=peers)
    try:
        service = make_service(setup.config, reactor, source=setup.source, adoption=adoption)
    except StartupError as e:
        log.critical("worker {n}: {e}", n=setup.index, e=e)
        return 1
    if setup.generation is not None:
        share_read_cache(service, setup.generation, setup.index)
    if setup.database is not None:
        share_database(service, reactor, setup.database, setup.secrets_key)
    status = [0]

    def start() -> None:
        try:
            service.privilegedStartService()
            service.startService()
        except Exception as e:  # a listener that cannot listen: one line, and the parent tries again later
            log.critical("worker {n} cannot start: {e}", n=setup.index, e=e)
            status[0] = 1
            reactor.stop()
            return
        reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
        if peers is not None:
            peers.listen().addErrback(lambda f: log.failure("worker {n}: cannot listen for the other workers",
                                                            f, n=setup.index))
            reactor.addSystemEventTrigger("before", "shutdown", peers.stop)
        log.info("worker {n} of {count} serving (pid {pid})", n=setup.index, count=setup.count, pid=os.getpid())

    ParentWatch(reactor, 0).startReading()
    reactor.callWhenRunning(start)
    reactor.run()
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
