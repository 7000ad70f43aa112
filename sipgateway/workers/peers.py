"""Asking every worker at once: what the admin listener's /sessions and /metrics need when
``--workers`` spreads the sessions over several processes.

Each worker listens on a UNIX socket of its own, ``worker-N.sock`` in the workers' private
directory (mode 0700: only the gateway's user can connect).  A question is a name; a
worker answers with the JSON of what its ``answers[name]()`` returns.  ``ask_all`` asks
every worker (itself directly) and fires with {pid: answer}; a worker that does not answer
within ``timeout`` (dead, restarting, stuck) is left out, and said so in the log.

Use: ``gateway.peers.answers["sessions"] = lambda: [...]`` in every worker, then
``gateway.peers.ask_all("sessions")`` where one worker serves the request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import UNIXClientEndpoint, UNIXServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver

log = Logger()

#: the longest answer taken (a /sessions of tens of thousands of sessions fits)
MAX_ANSWER = 64 << 20
#: the longest question
MAX_QUESTION = 256
#: seconds a worker has to answer
TIMEOUT = 2.0


def socket_path(run_dir: str, index: int) -> str:
    return os.path.join(run_dir, f"worker-{index}.sock")


class _Answering(Int32StringReceiver):
    MAX_LENGTH = MAX_QUESTION

    def stringReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        self.sendString(self.factory.peers.answer(data.decode("utf-8", "replace")))
        self.transport.loseConnection()

    def lengthLimitExceeded(self, length: int) -> None:  # noqa: N802
        self.transport.loseConnection()


class _Asking(Int32StringReceiver):
    MAX_LENGTH = MAX_ANSWER

    def __init__(self, question: str, done: Deferred) -> None:
        self.question = question
        self.done = done

    def connectionMade(self) -> None:  # noqa: N802
        self.sendString(self.question.encode("utf-8"))

    def stringReceived(self, data: bytes) -> None:  # noqa: N802
        if not self.done.called:
            self.done.callback(json.loads(data))
        self.transport.loseConnection()

    def lengthLimitExceeded(self, length: int) -> None:  # noqa: N802
        if not self.done.called:
            self.done.errback(ValueError(f"an answer of {length} bytes is too long"))
        self.transport.loseConnection()

    def connectionLost(self, reason) -> None:  # noqa: N802
        if not self.done.called:
            self.done.errback(reason)


def session_summary(session: Any, worker: int) -> dict[str, Any]:
    """A session as the admin listener's /sessions shows it, with its worker's process id,
    for the "sessions" question."""
    from sipgateway.sessioninfo import session_view

    return {**session_view(session), "worker": worker}


class Peers:
    """This worker's side: its socket, its answers, and asking the others."""

    def __init__(self, reactor, run_dir: str, index: int, count: int, pid: int,
                 connect: Callable[[int, Factory], Deferred] | None = None) -> None:
        self.reactor = reactor
        self.connect = connect if connect is not None else self._connect
        self.run_dir = run_dir
        self.index = index
        self.count = count
        self.pid = pid
        #: question -> what answers it here (its value must be JSON-serializable)
        self.answers: dict[str, Callable[[], Any]] = {}
        self.port = None

    def listen(self) -> Deferred:
        path = socket_path(self.run_dir, self.index)
        if os.path.exists(path):
            os.unlink(path)  # left by this worker's predecessor (killed)
        factory = Factory.forProtocol(_Answering)
        factory.peers = self
        factory.noisy = False
        d = UNIXServerEndpoint(self.reactor, path, mode=0o600).listen(factory)
        return d.addCallback(self._listening)

    def _listening(self, port) -> None:
        self.port = port

    def stop(self) -> Deferred | None:
        return self.port.stopListening() if self.port is not None else None

    def local(self, question: str) -> Any:
        """This worker's own answer (a LookupError for a question nobody registered)."""
        return self.answers[question]()

    def answer(self, question: str) -> bytes:
        try:
            value = {"pid": self.pid, "answer": self.local(question)}
        except KeyError:
            value = {"pid": self.pid, "error": f"no answer to {question!r}"}
        except Exception as e:  # a bug in an answer: the asker gets the reason, we keep serving
            log.failure("answering {question!r} for another worker", question=question)
            value = {"pid": self.pid, "error": f"{type(e).__name__}: {e}"}
        return json.dumps(value).encode("utf-8")

    def ask(self, index: int, question: str, timeout: float = TIMEOUT) -> Deferred:
        """Worker ``index``'s {"pid", "answer"} (or {"pid", "error"})."""
        if index == self.index:
            return succeed(json.loads(self.answer(question)))
        done: Deferred = Deferred()
        connecting = self.connect(index, Factory.forProtocol(lambda: _Asking(question, done)))
        connecting.addErrback(lambda failure: done.errback(failure) if not done.called else None)
        late = self.reactor.callLater(timeout, lambda: done.cancel() if not done.called else None)
        done.addBoth(lambda result: (late.cancel() if late.active() else None, result)[1])
        return done

    def _connect(self, index: int, factory: Factory) -> Deferred:
        return UNIXClientEndpoint(self.reactor, socket_path(self.run_dir, index), timeout=TIMEOUT).connect(factory)

    def ask_all(self, question: str, timeout: float = TIMEOUT) -> Deferred:
        """{pid: answer} of every worker that answered within ``timeout``."""
        asked = [self.ask(index, question, timeout) for index in range(1, self.count + 1)]

        def gathered(results: list) -> dict[int, Any]:
            found: dict[int, Any] = {}
            for index, (ok, value) in enumerate(results, start=1):
                if ok and "answer" in value:
                    found[value["pid"]] = value["answer"]
                else:
                    why = value.get("error") if ok else value.getErrorMessage()
                    log.warn("worker {n} did not answer {question!r}: {why}", n=index, question=question, why=why)
            return found

        return DeferredList(asked, consumeErrors=True).addCallback(gathered)
