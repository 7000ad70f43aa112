"""How a reload runs: read, check every part, then apply every part, or nothing.

A part is a function ``prepare(running, new) -> Change | None`` named in ``PARTS`` with the
``Config`` fields it applies.  ``prepare`` checks (reading files, asking the database:
it may return a Deferred) and raises ``ConfigError`` naming each problem, joined by "; ";
it changes nothing.  The ``Change`` it returns says in a few words what will change and
holds ``apply``, which makes the change (it may return a Deferred) and should not fail:
the one part whose apply can fail (writing SC accounts to the database) comes first, so
that its failure leaves everything as it was.  Adding a part (the upstream servers):
write its ``prepare`` and add one ``Part`` line here; until then a change of its fields is
reported as waiting for a restart.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.reflect import namedAny

from sipgateway.config import Config, ConfigError
from sipgateway.gateway import Gateway
from sipgateway.transports.limits import ConnectionCounter
from sipgateway.transports.listening import ListenerService

log = Logger()


@dataclass(frozen=True)
class Part:
    #: what it is, for log lines
    name: str
    #: the ``Config`` fields it applies
    fields: tuple[str, ...]
    #: dotted name of ``prepare(running, new_config) -> Change | None`` (or a Deferred of one)
    prepare: str


@dataclass
class Change:
    #: what will change, in a few words ("listeners added: raw2")
    summary: str
    #: makes the change; may return a Deferred
    apply: Callable[[], Any]


#: the parts, in the order they are applied (the SC accounts first: see the module docstring)
PARTS: tuple[Part, ...] = (
    Part("SC accounts", ("accounts",), "sipgateway.reload.accounts.prepare"),
    Part("gateway settings", ("licences", "trace", "max_connections", "max_connections_per_address"),
         "sipgateway.reload.gateway.prepare"),
    Part("listeners", ("listeners",), "sipgateway.reload.listeners.prepare"),
    # rules live in the accounts (applied by the SC accounts part too); cached_answer_age alone here
    Part("forwarding", ("cached_answer_age",), "sipgateway.reload.forwarding.prepare"),
)


@dataclass
class Running:
    """What a reload changes: the running gateway's parts and the configuration in force."""

    reactor: Any
    gateway: Gateway
    counter: ConnectionCounter
    #: the backend (IBackend); its ``accounts`` keep the SC accounts
    backend: Any
    top: MultiService
    config: Config
    #: reads the configuration again (``ConfigSource.load``)
    load: Callable[[], Config]
    #: where it comes from, for log lines
    source: str = "the command line"
    parts: tuple[Part, ...] = field(default=PARTS)
    #: worker processes serving the listeners (this one among them): they hold the parent's
    #: sockets, so listeners can be changed but not added, removed or moved by a reload
    workers: int = 1

    def listeners(self) -> dict[str, ListenerService]:
        """The listeners listening now, by name."""
        return {service.config.settings.name: service for service in self.top
                if isinstance(service, ListenerService) and service.config is not None}


class Reloader:
    """Runs one reload at a time; a reload asked for meanwhile runs after it."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self._current: Deferred | None = None
        self._again: list[Deferred] = []

    def reload(self) -> Deferred:
        """Fires with True when the new configuration is in force, False when refused."""
        if self._current is not None:
            waiter: Deferred = Deferred()
            self._again.append(waiter)
            return waiter
        # a reload that awaits nothing is over (and _current reset) before this returns
        self._current = current = ensureDeferred(self._reload())
        current.addBoth(self._done)
        return current

    def _done(self, result: object) -> object:
        self._current = None
        waiters, self._again = self._again, []
        if waiters:  # every HUP that came in meanwhile is answered by one more reload
            self.reload().addBoth(lambda outcome: [w.callback(outcome) for w in waiters])
        return result

    async def _reload(self) -> bool:
        running = self.running
        try:
            new = running.load()
        except ConfigError as e:
            return _refused(running, str(e))
        problems: list[str] = []
        changes: list[tuple[Part, Change]] = []
        for part in running.parts:
            try:
                change = await _maybe(namedAny(part.prepare)(running, new))
            except ConfigError as e:
                problems.append(str(e))
                continue
            except Exception as e:  # a fault of ours: say it, keep what runs
                log.failure("reload: checking the {part} failed", part=part.name)
                problems.append(f"{part.name}: {type(e).__name__}: {e}")
                continue
            if change is not None:
                changes.append((part, change))
        if problems:
            return _refused(running, "; ".join(problems))
        for i, (part, change) in enumerate(changes):
            try:
                await _maybe(change.apply())
            except Exception as e:
                done = ", ".join(p.name for p, _ in changes[:i]) or "nothing"
                if i == 0:
                    return _refused(running, f"{part.name}: {_reason(e)}")
                log.error("Reload from {source} stopped at the {part}: {why}; applied before it: {done}",
                          source=running.source, part=part.name, why=_reason(e), done=done)
                return False
        old, running.config = running.config, new
        summary = "; ".join(change.summary for _, change in changes if change.summary) or "nothing changed"
        log.info("Configuration reloaded from {source}: {summary}", source=running.source, summary=summary)
        waiting = _restart_only(running.parts, old, new)
        if waiting:
            log.warn("Reloaded {source}, but {fields} changed, which takes effect only at a restart "
                     "(until then the values of the start-up stay in force)", source=running.source,
                     fields=", ".join(waiting))
        return True


def _refused(running: Running, problem: str) -> bool:
    log.error("Reload refused: {problem}; the configuration in force is kept", problem=problem)
    return False


def _reason(e: BaseException) -> str:
    return str(e) or type(e).__name__


async def _maybe(value: Any) -> Any:
    """A Deferred's or a coroutine's result, or ``value`` itself."""
    return (await value) if isinstance(value, Deferred) or inspect.iscoroutine(value) else value


def _restart_only(parts: tuple[Part, ...], old: Config, new: Config) -> list[str]:
    """The fields that differ and that no part applies."""
    applied = {name for part in parts for name in part.fields}
    return [f.name for f in dataclasses.fields(old)
            if f.name not in applied and getattr(old, f.name) != getattr(new, f.name)]
