"""``SQLiteACS``: the IACS methods as database jobs, and ``open_sqlite_acs`` for start-up."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from sipgateway.acs import model as m
from sipgateway.acs.interface import IACS
from sipgateway.acs.sqlite import accounts, checkin, fees, fixtures, holds, items, loans, patrons
from sipgateway.acs.sqlite.context import Context, Tx
from sipgateway.acs.sqlite.credentials import DEFAULT_ITERATIONS, VerifiedSecrets
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.readcache import DEFAULT_TTL, ReadCache
from sipgateway.acs.sqlite.rules import CirculationRules
from sipgateway.acs.sqlite.runner import SyncRunner, ThreadedRunner
from sipgateway.acs.sqlite.schema import migrate

#: every request code this backend serves (REFERENCE.md 4.3 lists 16; 93/99/97 included)
SUPPORTED = frozenset({"23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19", "25", "15", "29",
                       "65"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def database_path(url_or_path: str) -> str:
    """``sqlite:PATH`` (or a plain path) → PATH; any other scheme is a clear error."""
    text = (url_or_path or "").strip()
    if text.startswith("sqlite:"):
        path = text[len("sqlite:"):]
        if path.startswith("//"):  # sqlite:///abs/path, as SQLAlchemy writes it
            path = path[2:]
    elif _SCHEME.match(text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        raise ValueError(f"--database {text!r}: only sqlite:PATH is supported")
    else:
        path = text
    if not path:
        raise ValueError(f"--database {url_or_path!r}: no file name; use sqlite:PATH")
    return path


@implementer(IACS)
class SQLiteACS:
    """The embedded library system.  Every IACS call is one job (one transaction) of the
    runner: by default a dedicated database thread with group commit."""

    supported = SUPPORTED

    def __init__(self, path: str, reactor, *, now: Callable[[], datetime] = datetime.now, currency: str = "USD",
                 rules: CirculationRules | None = None, runner: Any = None,
                 hash_iterations: int = DEFAULT_ITERATIONS, cache_size: int = 8192,
                 read_cache_ttl: float = DEFAULT_TTL) -> None:
        currency = (currency or "").strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise ValueError(f"currency {currency!r} is not a 3-letter ISO 4217 code")
        self.path = path
        self.reactor = reactor
        self.ctx = Context(clock=now, currency=currency, rules=rules or CirculationRules(),
                           secrets=VerifiedSecrets(cache_size), hash_iterations=hash_iterations)
        self.runner = runner if runner is not None else ThreadedRunner(path, reactor)
        #: recent read answers; every write empties it (see readcache.py)
        self.cache = ReadCache(ttl=read_cache_ttl, clock=lambda: now().timestamp())  # the library's own time
        #: 98 answers by (account, institution, location); emptied when accounts change
        self._status: dict[tuple[str, str, str], m.ACSStatus] = {}
        try:
            #: True when this open created the schema (the file was new or empty)
            self.is_new: bool = self.runner.run_sync("migrate", migrate, raw=True)
        except BaseException:
            self.runner.close()
            raise

    @classmethod
    def synchronous(cls, path: str = ":memory:", **kwargs: Any) -> SQLiteACS:
        """Jobs run at once in the calling thread; Deferreds come back fired (unit tests)."""
        runner = SyncRunner(path)
        try:
            return cls(path, None, runner=runner, **kwargs)
        except BaseException:
            runner.close()
            raise

    # --- plumbing ---------------------------------------------------------------------

    def _job(self, name: str, fn: Callable[[Tx], Any], terminal: m.Terminal | None, write: bool) -> Deferred:
        ctx = self.ctx
        return self.runner.submit(name, lambda conn: fn(Tx(conn, ctx, terminal)), write)

    def _write(self, name: str, terminal: m.Terminal | None, fn: Callable[[Tx], Any]) -> Deferred:
        self.cache.clear()
        # emptied again when the write is delivered, before the session sees its answer
        return self._job(name, fn, terminal, True).addBoth(self.cache.clear)

    def _read(self, name: str, terminal: m.Terminal | None, fn: Callable[[Tx], Any]) -> Deferred:
        return self._job(name, fn, terminal, False)

    def _cached_read(self, key: tuple, name: str, terminal: m.Terminal, fn: Callable[[Tx], Any]) -> Deferred:
        hit = self.cache.get(key)
        if hit is not None:
            return succeed(hit)
        d = self._job(name, fn, terminal, False)
        if d.called and not isinstance(d.result, Failure | Deferred):  # answered in the reactor thread
            self.cache.put(key, d.result)
        return d

    def _pin_key(self, patron_id: str, patron_pin: str | None) -> bytes | None:
        return self.ctx.secrets.fingerprint("patron-cache", patron_id, patron_pin)

    def run_sync(self, name: str, fn: Callable[[Tx], Any], write: bool = True) -> Any:
        """Run ``fn(tx)`` as one committed transaction and wait for it (start-up, tools)."""
        ctx = self.ctx
        return self.runner.run_sync(name, lambda conn: fn(Tx(conn, ctx)), write)

    # --- start-up -----------------------------------------------------------------------

    def seed_demo(self) -> bool:
        """Load the demo fixtures if the database is empty; True when it did."""
        return self.run_sync("seed_demo", fixtures.seed_demo)

    def ensure_account(self, name: str, password: str, institution: str, encoding: str = "utf-8",
                       error_detection: str = "auto", library_name: str = "", terminal_location: str = "",
                       enabled: bool = True) -> m.Account:
        """Create or update an SC account declared in the configuration (synchronous)."""
        self._status.clear()
        return self.run_sync("ensure_account", lambda tx: accounts.ensure(
            tx, name, password, institution, encoding, error_detection, library_name, terminal_location, enabled))

    # --- IACS ---------------------------------------------------------------------------

    def authenticate(self, username: str, password: str, location: str) -> Deferred:
        return self._read("authenticate", None, lambda tx: accounts.authenticate(tx, username, password))

    def account(self, name: str) -> Deferred:
        return self._read("account", None, lambda tx: accounts.lookup(tx, name))

    def status(self, terminal: m.Terminal) -> Deferred:
        # Many SCs ask before every transaction: answer from memory while the database works.
        if self.runner.failing:
            return succeed(self._offline(terminal))
        key = (terminal.account, terminal.institution, terminal.location)
        status = self._status.get(key)
        if status is not None:
            return succeed(status)

        def answer(tx: Tx) -> m.ACSStatus:
            row = tx.one("SELECT library_name, terminal_location FROM sc_accounts WHERE name = ?", terminal.account)
            return m.ACSStatus(online=True, checkin_ok=True, checkout_ok=True, renewal_ok=True,
                               status_update_ok=True, offline_ok=True, institution=terminal.institution,
                               library_name=row["library_name"] if row else "",
                               terminal_location=(row["terminal_location"] if row else "") or terminal.location,
                               supported=self.supported)

        def remember(status: m.ACSStatus) -> m.ACSStatus:
            if len(self._status) < 4096:
                self._status[key] = status
            return status

        def offline(failure: Failure) -> m.ACSStatus:
            failure.trap(ACSUnavailable)
            return self._offline(terminal)

        return self._read("status", terminal, answer).addCallbacks(remember, offline)

    def _offline(self, terminal: m.Terminal) -> m.ACSStatus:
        return m.ACSStatus(online=False, checkin_ok=False, checkout_ok=False, renewal_ok=False,
                           status_update_ok=False, offline_ok=True, timeout_period=0,
                           institution=terminal.institution, supported=self.supported,
                           messages=m.Messages(screen=("The library system is offline",)))

    def patron_status(self, terminal: m.Terminal, patron_id: str, patron_pin: str | None) -> Deferred:
        key = ("23", terminal, patron_id, self._pin_key(patron_id, patron_pin))
        return self._cached_read(key, "patron_status", terminal,
                                 lambda tx: patrons.patron_status(tx, patron_id, patron_pin))

    def patron_information(self, terminal: m.Terminal, patron_id: str, patron_pin: str | None,
                           item_list: m.ItemList | None, start: int | None, end: int | None) -> Deferred:
        key = ("63", terminal, patron_id, self._pin_key(patron_id, patron_pin), item_list, start, end)
        return self._cached_read(key, "patron_information", terminal, lambda tx: patrons.patron_information(
            tx, patron_id, patron_pin, item_list, start, end))

    def block_patron(self, terminal: m.Terminal, patron_id: str, message: str, card_retained: bool) -> Deferred:
        return self._write("block_patron", terminal, lambda tx: patrons.block(tx, patron_id, message, card_retained))

    def patron_enable(self, terminal: m.Terminal, patron_id: str, patron_pin: str | None) -> Deferred:
        return self._write("patron_enable", terminal, lambda tx: patrons.enable(tx, patron_id, patron_pin))

    def checkout(self, terminal: m.Terminal, request: m.CheckoutRequest) -> Deferred:
        return self._write("checkout", terminal, lambda tx: loans.checkout(tx, request))

    def renew(self, terminal: m.Terminal, request: m.CheckoutRequest) -> Deferred:
        return self._write("renew", terminal, lambda tx: loans.renew(tx, request))

    def renew_all(self, terminal: m.Terminal, patron_id: str, patron_pin: str | None,
                  fee_acknowledged: bool) -> Deferred:
        return self._write("renew_all", terminal, lambda tx: loans.renew_all(tx, patron_id, patron_pin))

    def checkin(self, terminal: m.Terminal, request: m.CheckinRequest) -> Deferred:
        return self._write("checkin", terminal, lambda tx: checkin.checkin(tx, request))

    def item_information(self, terminal: m.Terminal, item_id: str) -> Deferred:
        return self._cached_read(("17", terminal, item_id), "item_information", terminal,
                                 lambda tx: items.information(tx, item_id))

    def item_status_update(self, terminal: m.Terminal, item_id: str, item_properties: str) -> Deferred:
        return self._write("item_status_update", terminal,
                           lambda tx: items.status_update(tx, item_id, item_properties))

    def hold(self, terminal: m.Terminal, request: m.HoldRequest) -> Deferred:
        return self._write("hold", terminal, lambda tx: holds.hold(tx, request))

    def end_session(self, terminal: m.Terminal, patron_id: str, patron_pin: str | None) -> Deferred:
        return self._read("end_session", terminal, lambda tx: patrons.end_session(tx, patron_id))

    def fee_paid(self, terminal: m.Terminal, payment: m.FeePayment) -> Deferred:
        return self._write("fee_paid", terminal, lambda tx: fees.fee_paid(tx, payment))

    def close(self) -> Deferred:
        return self.runner.close()


def open_sqlite_acs(url_or_path: str, reactor, demo: bool = False, **kwargs: Any) -> SQLiteACS:
    """Open (creating and migrating) the database named by ``--database``, synchronously;
    seed the demo fixtures when asked and the database is new."""
    path = database_path(url_or_path)
    try:
        acs = SQLiteACS(path, reactor, **kwargs)
    except ValueError:
        raise
    except Exception as e:
        raise ACSUnavailable(f"--database {url_or_path!r}: cannot open the database: {e}") from e
    if demo:
        acs.seed_demo()  # only an empty database is seeded
    return acs
