"""The PIN guard: patron PINs cannot be guessed without limit, whichever ACS checks them.

``PinGuardedACS`` wraps any IACS.  Every request that carries a patron PIN (23, 63, 25,
11, 29, 65, 15, 37) goes through ``PinGuard.run``: the patron's and the terminal's
counters are read first (one quick read); while either is locked the request is refused
with the request's own "not done" answer (``CQN`` where the reply has one) and a screen
message to see staff, and the ACS is not asked to check anything, the right PIN
included.  Otherwise the ACS answers, and the guard watches the PIN outcome it reports
(``pin_valid``, which becomes ``CQ``): a wrong PIN counts against the patron and the
terminal (the device's address and SC account), a right one clears the patron's count.
Answers that carry no PIN outcome (66, 16, 38) are preceded by a patron status check
(23) with the same PIN.  Watching outcomes rather than checking PINs itself is what lets
the guard sit in front of the embedded library system and a forwarded one alike.

The counters live in an ``AttemptStore`` (attempts.py), the gateway's database, so they
survive a restart and hold across gateway processes.  Within one process no more checks
of a key go out at once than failures it may still take (``Slots``), so a thousand guesses
sent at once still meet the limit after ``max_failures`` of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.interface import IACS
from sipgateway.attempts import PIN_PATRON, PIN_TERMINAL, AttemptStore, Key, Limit, Record, patron_subject

DEFAULT_MAX_FAILURES = 10             # wrong PINs per patron ...
DEFAULT_MAX_PER_TERMINAL = 30         # ... and per terminal (address and SC account) ...
DEFAULT_LOCK_SECONDS = 3600.0         # ... in this window; a lock lasts as long
PIN_LOCKED = "Too many wrong PINs: PIN entry is locked for this card; please see staff"
KNOWN_KEYS = 10_000  # (patron, terminal) pairs whose keys are kept made

log = Logger()

#: an ACS answer and the PIN outcome it reports (None: no PIN was checked)
Answer = tuple[Any, bool | None]


def mask_patron(patron_id: str) -> str:
    """A patron id fit for a log line: the last two characters of a long id only."""
    text = patron_id.strip()
    return "****" + text[-2:] if len(text) >= 6 else "****"


class Slots:
    """How many PIN checks of each key are out now, and who waits for one of them to come
    back.  A check may go out only while the key's recorded failures plus the checks out
    stay under its limit: every check out could be one more failure, so a thousand guesses
    sent at once meet the limit after ``max_failures`` of them, while right PINs (no failures
    recorded) go out side by side.  A check that has not come back after ``hold_limit``
    seconds gives its slot back."""

    def __init__(self, clock: IReactorTime, hold_limit: float) -> None:
        self.clock = clock
        self.hold_limit = hold_limit
        self._out: dict[Key, int] = {}
        self._waiting: dict[Key, list[Callable[[], None]]] = {}
        #: waiters woken, run in a loop: a queue of checks that are refused at once (a locked
        #: patron) must not nest one inside the other
        self._ready: deque[Callable[[], None]] = deque()
        self._waking = False

    def __len__(self) -> int:
        return len(self._out) + len(self._waiting)

    @property
    def idle(self) -> bool:
        """No check of any key is out."""
        return not self._out

    def out(self, key: Key) -> int:
        return self._out.get(key, 0)

    def wait(self, key: Key, f: Callable[[], None]) -> None:
        """Call ``f`` when a check of ``key`` comes back."""
        self._waiting.setdefault(key, []).append(f)

    def take(self, keys: Sequence[Key], d: Deferred) -> Deferred:
        """A slot of each key for the check ``d``, given back when it fires."""
        for key in keys:
            self._out[key] = self._out.get(key, 0) + 1
        held = [True]

        def give_back(result: object = None) -> object:
            if held[0]:
                held[0] = False
                self._give_back(keys)
            return result

        d.addBoth(give_back)
        if held[0]:  # still out
            timer = self.clock.callLater(self.hold_limit, give_back)
            d.addBoth(_cancel, timer)
        return d

    def _give_back(self, keys: Sequence[Key]) -> None:
        for key in keys:
            left = self._out[key] - 1
            if left:
                self._out[key] = left
            else:
                del self._out[key]
            self._ready.extend(self._waiting.pop(key, ()))
        if self._waking:
            return
        self._waking = True
        try:
            while self._ready:
                self._ready.popleft()()
        finally:
            self._waking = False


def _cancel(result: object, timer: Any) -> object:
    if timer.active():
        timer.cancel()
    return result


class PinGuard:
    def __init__(self, clock: IReactorTime, store: AttemptStore, *, max_failures: int = DEFAULT_MAX_FAILURES,
                 max_per_terminal: int = DEFAULT_MAX_PER_TERMINAL, lock_seconds: float = DEFAULT_LOCK_SECONDS,
                 hold_limit: float = 30.0) -> None:
        self.clock = clock
        self.store = store
        self.max_failures = max_failures
        self.max_per_terminal = max_per_terminal
        self.lock_seconds = lock_seconds
        self.slots = Slots(clock, hold_limit)
        #: locks imposed since start (the admin listener's /metrics)
        self.locks = 0
        self._known_keys: dict[tuple[str, str, str], list[Key]] = {}

    def _keys(self, terminal: m.Terminal, patron_id: str) -> list[Key]:
        # on the path of every request with a PIN: the keys are made once and looked up
        keys = self._known_keys.get((patron_id, terminal.address, terminal.account))
        if keys is None:
            keys = []
            if self.lock_seconds > 0 and self.max_failures > 0:
                keys.append(Key(PIN_PATRON, patron_subject(patron_id)))
            if self.lock_seconds > 0 and self.max_per_terminal > 0:
                keys.append(Key(PIN_TERMINAL, terminal.address, terminal.account))
            if len(self._known_keys) >= KNOWN_KEYS:
                self._known_keys.clear()
            self._known_keys[(patron_id, terminal.address, terminal.account)] = keys
        return keys

    def _max(self, key: Key) -> int:
        return self.max_failures if key.scope == PIN_PATRON else self.max_per_terminal

    def run(self, terminal: m.Terminal, patron_id: str, attempt: Callable[[], Deferred],
            refuse: Callable[[], Any], outcome: Callable[[Any], Answer] | None = None) -> Deferred:
        """``attempt()`` unless the patron or the terminal is locked, then ``refuse()``; fires
        with the ACS's (or the refusal's) answer.  ``outcome`` tells what ``attempt()`` fired
        with: the answer and its PIN outcome (default: an answer with ``pin_valid``)."""
        keys = self._keys(terminal, patron_id)
        how = outcome or _pin_valid
        if not keys:
            return attempt().addCallback(lambda value: how(value)[0])
        if self.slots.idle and self.store.clean(keys):
            # the usual case: nothing recorded, nothing out (every check out might fail)
            return self._go(keys, {}, terminal, attempt, how)
        return self._check(keys, terminal, attempt, refuse, how)

    def _check(self, keys: list[Key], terminal: m.Terminal, attempt: Callable[[], Deferred],
               refuse: Callable[[], Any], outcome: Callable[[Any], Answer]) -> Deferred:
        d = self.store.read(keys)
        if _ready(d):  # the usual case, answered at once: no callbacks to run
            return self._judged(d.result, keys, terminal, attempt, refuse, outcome)
        return d.addCallback(self._judged, keys, terminal, attempt, refuse, outcome)

    def _judged(self, records: dict[Key, Record], keys: list[Key], terminal: m.Terminal,
                attempt: Callable[[], Deferred], refuse: Callable[[], Any],
                outcome: Callable[[Any], Answer]) -> Deferred:
        slots = self.slots
        if records:
            now = self.clock.seconds()
            if any(record.locked(now) for record in records.values()):
                return maybeDeferred(refuse)
        for key in keys:
            out = slots.out(key)
            record = records.get(key) if records else None
            if record is not None and record.window_start + self.lock_seconds > now:
                out += record.failures
            if out >= self._max(key):
                # as many checks are out as failures may still come: wait for one, then look again
                return self._wait(key, keys, terminal, attempt, refuse, outcome)
        return self._go(keys, records, terminal, attempt, outcome)

    def _go(self, keys: list[Key], records: dict[Key, Record], terminal: m.Terminal,
            attempt: Callable[[], Deferred], outcome: Callable[[Any], Answer]) -> Deferred:
        """Ask the ACS; count the failure if it is one."""
        try:
            answer = attempt()
        except Exception:
            return fail()
        if _ready(answer):
            value, pin_ok = outcome(answer.result)
            if pin_ok is not False:  # answered at once, no failure to count: nothing more to wait for
                if pin_ok and records:
                    self._succeeded(pin_ok, records, keys)
                return answer if value is answer.result else succeed(value)
        return self.slots.take(keys, answer.addCallback(self._outcome, records, keys, terminal, outcome))

    def _wait(self, key: Key, keys: list[Key], terminal: m.Terminal, attempt: Callable[[], Deferred],
              refuse: Callable[[], Any], outcome: Callable[[Any], Answer]) -> Deferred:
        waited: Deferred = Deferred()
        self.slots.wait(key, lambda: self._check(keys, terminal, attempt, refuse, outcome).chainDeferred(waited))
        return waited

    def _outcome(self, answered: Any, records: dict[Key, Record], keys: list[Key], terminal: m.Terminal,
                 outcome: Callable[[Any], Answer]) -> Any:
        result, pin_ok = outcome(answered)
        if pin_ok is False:
            limits = [Limit(key, self._max(key), self.lock_seconds, self.lock_seconds) for key in keys]
            d = self.store.fail(limits, self.clock.seconds(), f"{terminal.address} ({terminal.account})")
            # the answer (and the slot) wait until the failure is counted: the next check sees it
            return d.addCallbacks(self._log_locks, _store_failed, errbackArgs=("counting a wrong PIN",)).addCallback(
                lambda _: result)
        self._succeeded(pin_ok, records, keys)
        return result

    def _succeeded(self, pin_ok: bool | None, records: dict[Key, Record], keys: list[Key]) -> None:
        patron = keys[0]
        if pin_ok and records and patron.scope == PIN_PATRON and patron in records:
            self.store.reset([patron]).addErrback(_store_failed, "clearing wrong PINs")

    def _log_locks(self, locked: Sequence[Record]) -> None:
        self.locks += len(locked)
        for record in locked:
            key = record.key
            if key.scope == PIN_PATRON:
                log.warn("PIN checks locked for patron {patron} for {seconds:.0f} s after {n} wrong PINs "
                         "(the last from {source})", patron=mask_patron(key.subject), seconds=self.lock_seconds,
                         n=record.failures, source=record.last_from)
            else:
                log.warn("PIN checks locked for terminal {terminal} for {seconds:.0f} s after {n} wrong PINs; "
                         "'sipgateway unlock {address}' lifts it", terminal=key.describe(),
                         seconds=self.lock_seconds, n=record.failures, address=key.subject)


def _pin_valid(result: Any) -> Answer:
    """The PIN outcome of an answer that reports it (``pin_valid``, sent as ``CQ``)."""
    return result, result.pin_valid


def _as_is(answer: Answer) -> Answer:
    return answer


def _ready(d: Deferred) -> bool:
    """Fired with a value already (not waiting on another Deferred, not a failure).  Not
    ``isinstance(d.result, Deferred)``: Deferred is an ABC, and that check costs a
    microsecond on the path of every request with a PIN."""
    return d.called and not d.paused and not isinstance(d.result, Failure)


def _store_failed(failure: Failure, doing: str) -> None:
    log.failure("PIN guard store failed while {doing}", failure, doing=doing)


def _screen(text: str) -> m.Messages:
    return m.Messages(screen=(text,))


@implementer(IACS)
class PinGuardedACS:
    """Any IACS, with the PIN guard in front of every request that checks a PIN."""

    def __init__(self, acs: Any, guard: PinGuard) -> None:
        self.acs = acs
        self.guard = guard
        self.supported = acs.supported
        # requests that check no PIN go straight to the backend's own method (per request,
        # a lookup through __getattr__ would cost more than the rest of a cached 98)
        for name in ("status", "block_patron", "checkin", "item_information", "item_status_update", "end_session"):
            setattr(self, name, getattr(acs, name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.acs, name)  # the rest without a PIN (SIP2+), and start/close

    # --- answers to a locked patron or terminal ---------------------------------------------

    def _locked_status(self, terminal: m.Terminal, patron_id: str, cls: type, **extra: Any) -> Deferred:
        """The patron as a wrong PIN shows them (name, flags, validity; no contact details or
        money), asked without the PIN, with the lock as the screen message."""
        def shown(s: m.PatronStatus) -> m.PatronStatus:
            return cls(patron_id=s.patron_id, name=s.name, valid=s.valid, pin_valid=False, flags=s.flags,
                       language=s.language, messages=_screen(PIN_LOCKED), **extra)
        return self.acs.patron_status(terminal, rq.PatronStatusRequest(patron_id)).addCallback(shown)

    def _pin_first(self, terminal: m.Terminal, patron_id: str, pin: str, then: Callable[[], Deferred],
                   wrong: Callable[[m.Messages], Any]) -> Deferred:
        """For answers without a PIN outcome: check the PIN with a patron status first."""
        def checked(status: m.PatronStatus) -> Any:
            if status.pin_valid is False:
                return wrong(status.messages), False
            return then().addCallback(lambda result: (result, status.pin_valid))
        return self.acs.patron_status(terminal, rq.PatronStatusRequest(patron_id, pin)).addCallback(checked)

    # --- the requests that check a PIN ----------------------------------------------------------

    def patron_status(self, terminal: m.Terminal, request: rq.PatronStatusRequest) -> Deferred:
        if request.patron_pin is None:
            return self.acs.patron_status(terminal, request)
        return self.guard.run(terminal, request.patron_id, lambda: self.acs.patron_status(terminal, request),
                              lambda: self._locked_status(terminal, request.patron_id, m.PatronStatus))

    def patron_information(self, terminal: m.Terminal, request: rq.PatronInformationRequest) -> Deferred:
        if request.patron_pin is None:
            return self.acs.patron_information(terminal, request)
        return self.guard.run(terminal, request.patron_id, lambda: self.acs.patron_information(terminal, request),
                              lambda: self._locked_status(terminal, request.patron_id, m.PatronInformation,
                                                          item_list=request.item_list))

    def patron_enable(self, terminal: m.Terminal, request: rq.PatronEnableRequest) -> Deferred:
        if request.patron_pin is None:
            return self.acs.patron_enable(terminal, request)
        return self.guard.run(terminal, request.patron_id, lambda: self.acs.patron_enable(terminal, request),
                              lambda: self._locked_status(terminal, request.patron_id, m.PatronStatus))

    def _circulation(self, ask: Callable[[], Deferred], terminal: m.Terminal,
                     request: rq.CheckoutRequest) -> Deferred:
        if request.patron_pin is None:
            return ask()
        return self.guard.run(terminal, request.patron_id, ask, lambda: succeed(
            m.CirculationResult(ok=False, patron_id=request.patron_id, item_id=request.item_id, pin_valid=False,
                                messages=_screen(PIN_LOCKED))))

    def checkout(self, terminal: m.Terminal, request: rq.CheckoutRequest) -> Deferred:
        return self._circulation(lambda: self.acs.checkout(terminal, request), terminal, request)

    def renew(self, terminal: m.Terminal, request: rq.CheckoutRequest) -> Deferred:
        return self._circulation(lambda: self.acs.renew(terminal, request), terminal, request)

    def _pin_checked_first(self, terminal: m.Terminal, patron_id: str, pin: str | None, ask: Callable[[], Deferred],
                           refused: Callable[[m.Messages], Any]) -> Deferred:
        """A request whose answer says nothing of the PIN (65, 15, 37): a 23 checks it first."""
        if pin is None:
            return ask()
        return self.guard.run(terminal, patron_id, lambda: self._pin_first(terminal, patron_id, pin, ask, refused),
                              lambda: refused(_screen(PIN_LOCKED)), _as_is)

    def renew_all(self, terminal: m.Terminal, request: rq.RenewAllRequest) -> Deferred:
        return self._pin_checked_first(terminal, request.patron_id, request.patron_pin,
                                       lambda: self.acs.renew_all(terminal, request),
                                       lambda messages: m.RenewAllResult(ok=False, messages=messages))

    def hold(self, terminal: m.Terminal, request: rq.HoldRequest) -> Deferred:
        return self._pin_checked_first(terminal, request.patron_id, request.patron_pin,
                                       lambda: self.acs.hold(terminal, request),
                                       lambda messages: m.HoldResult(ok=False, patron_id=request.patron_id,
                                                                     item_id=request.item_id,
                                                                     title=request.title_id, messages=messages))

    def fee_paid(self, terminal: m.Terminal, request: rq.FeePayment) -> Deferred:
        return self._pin_checked_first(terminal, request.patron_id, request.patron_pin,
                                       lambda: self.acs.fee_paid(terminal, request),
                                       lambda messages: m.FeePaidResult(accepted=False, patron_id=request.patron_id,
                                                                        transaction_id=request.transaction_id,
                                                                        messages=messages))
