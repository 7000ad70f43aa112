"""``SQLiteACS``: the IACS methods as database jobs, and ``open_sqlite_acs`` for start-up."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.backends import split_url
from sipgateway.acs.interface import IACS, IAccounts
from sipgateway.acs.postgresql import is_url
from sipgateway.acs.postgresql.startup import check_postgresql
from sipgateway.acs.postgresql.target import redact
from sipgateway.acs.sqlite import (
    accounts,
    checkin,
    fees,
    fixtures,
    holds,
    items,
    journal,
    loans,
    patrons,
    renewaloptions,
    unoffered,
    usage,
    usagestore,
)
from sipgateway.acs.sqlite.attemptstore import SQLiteAttempts
from sipgateway.acs.sqlite.context import Call, Context, Tx
from sipgateway.acs.sqlite.credentials import DEFAULT_ITERATIONS, VerifiedSecrets
from sipgateway.acs.sqlite.dbprocess import ProcessRunner, Spawn
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.flights import Flights
from sipgateway.acs.sqlite.readcache import DEFAULT_TTL, ReadCache
from sipgateway.acs.sqlite.rules import CirculationRules
from sipgateway.acs.sqlite.runner import Runner, SyncRunner
from sipgateway.acs.sqlite.schema import migrate, require_writable

#: every request code this backend serves (the 16 positions of BX in SIP2 98, 93/99/97 included)
SUPPORTED = frozenset({"23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19", "25", "15", "29",
                       "65"}) | {"39", "41", "70"}  # and OCLC Wise SIP2+ (Y1, Y3, X1 answered: not offered)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: seconds a call without a deadline of its own (login, account look-up) may take
DEFAULT_TIMEOUT = 30.0
IN_MEMORY = ("an in-memory database (:memory:) cannot be served: the database process cannot open it, and every "
             "loan, hold and payment would vanish at the next restart; use sqlite:PATH with a file")


def database_path(url_or_path: str) -> str:
    """``sqlite:PATH`` (or a plain path) → PATH; a scheme that names no backend
    (acs/backends.py) is a clear error."""
    text = (url_or_path or "").strip()
    if is_url(text):
        return text  # PostgreSQL: the URL is what every connection opens
    if _SCHEME.match(text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        _, path = split_url(text, "--database")
        if path.startswith("//"):  # sqlite:///abs/path, as SQLAlchemy writes it
            path = path[2:]
    else:
        path = text
    if not path:
        raise ValueError(f"--database {url_or_path!r}: no file name; use sqlite:PATH")
    return path


def missing_database(path: str, *, can_init: bool = False) -> str | None:
    """What a tool says when ``path`` (``database_path``'s) is a SQLite file that is not
    there, or None (a PostgreSQL URL, or a file that exists)."""
    if is_url(path) or os.path.exists(path):
        return None
    init = ", or --init to create it" if can_init else ""
    return f"no database at {path!r} (give the gateway's --database sqlite:PATH{init})"


@implementer(IACS, IAccounts)
class SQLiteACS:
    """The embedded library system.  Every IACS call is one job (one transaction) of the
    runner: by default a database process with group commit (dbprocess.py), started by
    ``start``; until then only the synchronous start-up calls work."""

    supported = SUPPORTED

    def __init__(self, path: str, reactor, *, now: Callable[[], datetime] = datetime.now, currency: str = "USD",
                 rules: CirculationRules | None = None, runner: Runner | None = None,
                 hash_iterations: int = DEFAULT_ITERATIONS, cache_size: int = 8192,
                 read_cache_ttl: float = DEFAULT_TTL, spawn: Spawn | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        currency = currency.strip().upper()  # checked by the config ([gateway] currency)
        self.path = path
        self.reactor = reactor
        #: the deadline of a call whose terminal brings none: this many seconds from the call
        self.timeout = timeout
        self.ctx = Context(clock=now, currency=currency, rules=rules or CirculationRules(),
                           secrets=VerifiedSecrets(cache_size), hash_iterations=hash_iterations)
        if runner is None:
            if path == ":memory:":  # the database process could not open it: only ``synchronous`` serves one
                raise ValueError(IN_MEMORY)
            runner = ProcessRunner(path, reactor, self.ctx, cache_size=cache_size, spawn=spawn)
        self.runner: Runner = runner
        #: recent read answers; every write empties it (see readcache.py)
        # the library's own time (a test's clock); the wall clock read cheaply when that is it
        self.cache = ReadCache(ttl=read_cache_ttl, clock=time.time if now == datetime.now else
                               (lambda: now().timestamp()))
        #: True when ``open_sqlite_acs`` seeded the demo fixtures into it
        self.seeded = False
        self._logins = Flights()
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

    @property
    def answers_by_deadline(self) -> bool:
        """See IACS: true of the database process, not of the synchronous runner."""
        return self.runner.answers_by_deadline

    def _call(self, fn: Callable[..., Any], args: tuple, terminal: m.Terminal | None) -> Call:
        deadline = terminal.deadline if terminal is not None else None
        if deadline is None and self.answers_by_deadline:
            deadline = self.reactor.seconds() + self.timeout
        return Call(fn, args, terminal, self.ctx.clock(), self.ctx, deadline)

    def _write(self, name: str, terminal: m.Terminal | None, fn: Callable[..., Any], *args: Any) -> Deferred:
        self.cache.clear()
        # emptied again when the write is delivered, before the session sees its answer
        return self.runner.submit(name, self._call(fn, args, terminal), True).addBoth(self.cache.clear)

    def _read(self, name: str, terminal: m.Terminal | None, fn: Callable[..., Any], *args: Any) -> Deferred:
        return self.runner.submit(name, self._call(fn, args, terminal), False)

    def _cached_read(self, key: tuple, name: str, terminal: m.Terminal, fn: Callable[..., Any],
                     *args: Any) -> Deferred:
        hit = self.cache.get(key)
        if hit is not None:
            return succeed(hit)
        d = self._read(name, terminal, fn, *args)
        if d.called and not isinstance(d.result, Failure | Deferred):  # answered in the reactor thread
            self.cache.put(key, d.result)
        return d

    def _pin_key(self, patron_id: str, patron_pin: str | None) -> bytes | None:
        return self.ctx.secrets.fingerprint("patron-cache", patron_id, patron_pin)

    def run_sync(self, name: str, fn: Callable[[Tx], Any], write: bool = True) -> Any:
        """Run ``fn(tx)`` as one committed transaction and wait for it (start-up, tools)."""
        return self.runner.run_sync(name, Call(fn, (), None, self.ctx.clock(), self.ctx), write)

    # --- start-up -----------------------------------------------------------------------

    def seed_demo(self) -> bool:
        """Load the demo fixtures if the database is empty; True when it did."""
        return self.run_sync("seed_demo", fixtures.seed_demo)

    def account_names(self) -> set[str]:
        """Every SC account in the database, enabled or not (start-up checks)."""
        return self.run_sync("account_names", lambda tx: {r[0] for r in tx.all("SELECT name FROM sc_accounts")},
                             write=False)

    def missing_contents(self) -> list[str]:
        """What the library has none of: "SC accounts", "patrons", "items"."""
        return self.run_sync("missing_contents", fixtures.missing_contents, write=False)

    def demo_credentials(self) -> list[str]:
        """The demo SC accounts that still have their published passwords."""
        return self.run_sync("demo_credentials", fixtures.demo_credentials, write=False)

    def ensure_account(self, name: str, password: str, institution: str, encoding: str = "utf-8",
                       error_detection: str = "auto", library_name: str = "", terminal_location: str = "",
                       enabled: bool = True) -> m.Account:
        """Create or update an SC account declared in the configuration (synchronous)."""
        self.cache.clear()
        return self.run_sync("ensure_account", lambda tx: accounts.ensure(
            tx, name, password, institution, encoding, error_detection, library_name, terminal_location, enabled))

    # --- the config's SC accounts while running (a reload) --------------------------------

    def known_accounts(self) -> Deferred:
        """Fires with every SC account in the database, enabled or not."""
        return self._read("known_accounts", None, accounts.names)

    def write_accounts(self, rows: list[dict[str, str]]) -> Deferred:
        """Create or update SC accounts (keyword arguments of ``accounts.ensure``) in one
        transaction of the database process; fires with their names once committed."""
        return self._write("write_accounts", None, accounts.ensure_all, rows)

    # --- IAccounts ---------------------------------------------------------------------

    def authenticate(self, username: str, password: str, location: str) -> Deferred:
        # a login storm: identical logins share one job (and one password hash), see flights.py
        key = (username, self.ctx.secrets.fingerprint("sc-login", username, password))
        return self._logins.call(key, lambda: self._read("authenticate", None, accounts.authenticate, username,
                                                         password))

    def account(self, name: str) -> Deferred:
        return self._read("account", None, accounts.lookup, name)

    # --- IACS ---------------------------------------------------------------------------

    def status(self, terminal: m.Terminal, request: rq.StatusRequest) -> Deferred:
        # Many SCs ask before every transaction: answered from the read cache while the
        # database works, and offline at once while it does not
        if self.runner.failing:
            return succeed(self._offline(terminal))

        def offline(failure: Failure) -> m.ACSStatus:
            failure.trap(ACSUnavailable)
            return self._offline(terminal)

        d = self._cached_read(("99", terminal.key), "status", terminal, accounts.status, self.supported)
        if d.called and not isinstance(d.result, Failure | Deferred):
            return d  # answered at once (the usual case): nothing to add
        return d.addErrback(offline)

    def _offline(self, terminal: m.Terminal) -> m.ACSStatus:
        return m.ACSStatus(online=False, checkin_ok=False, checkout_ok=False, renewal_ok=False,
                           status_update_ok=False, offline_ok=True, timeout_period=0,
                           institution=terminal.institution, supported=self.supported,
                           messages=m.Messages(screen=("The library system is offline",)))

    def patron_status(self, terminal: m.Terminal, request: rq.PatronStatusRequest) -> Deferred:
        patron, pin = request.patron_id, request.patron_pin
        return self._cached_read(("23", terminal.key, patron, self._pin_key(patron, pin)), "patron_status", terminal,
                                 patrons.patron_status, patron, pin)

    def patron_information(self, terminal: m.Terminal, request: rq.PatronInformationRequest) -> Deferred:
        r = request
        key = ("63", terminal.key, r.patron_id, self._pin_key(r.patron_id, r.patron_pin), r.item_list, r.start, r.end)
        return self._cached_read(key, "patron_information", terminal, patrons.patron_information,
                                 r.patron_id, r.patron_pin, r.item_list, r.start, r.end)

    def block_patron(self, terminal: m.Terminal, request: rq.BlockPatronRequest) -> Deferred:
        return self._write("block_patron", terminal, patrons.block, request.patron_id, request.message,
                           request.card_retained)

    def patron_enable(self, terminal: m.Terminal, request: rq.PatronEnableRequest) -> Deferred:
        return self._write("patron_enable", terminal, patrons.enable, request.patron_id, request.patron_pin)

    def checkout(self, terminal: m.Terminal, request: rq.CheckoutRequest) -> Deferred:
        return self._write("checkout", terminal, loans.checkout, request)

    def renew(self, terminal: m.Terminal, request: rq.CheckoutRequest) -> Deferred:
        return self._write("renew", terminal, loans.renew, request)

    def renew_all(self, terminal: m.Terminal, request: rq.RenewAllRequest) -> Deferred:
        return self._write("renew_all", terminal, loans.renew_all, request.patron_id, request.patron_pin)

    def checkin(self, terminal: m.Terminal, request: rq.CheckinRequest) -> Deferred:
        return self._write("checkin", terminal, checkin.checkin, request)

    def item_information(self, terminal: m.Terminal, request: rq.ItemInformationRequest) -> Deferred:
        return self._cached_read(("17", terminal.key, request.item_id), "item_information", terminal,
                                 items.information, request.item_id)

    def item_status_update(self, terminal: m.Terminal, request: rq.ItemStatusUpdateRequest) -> Deferred:
        return self._write("item_status_update", terminal, items.status_update, request.item_id,
                           request.item_properties)

    def hold(self, terminal: m.Terminal, request: rq.HoldRequest) -> Deferred:
        return self._write("hold", terminal, holds.hold, request)

    def end_session(self, terminal: m.Terminal, request: rq.EndSessionRequest) -> Deferred:
        return self._read("end_session", terminal, patrons.end_session, request.patron_id)

    def fee_paid(self, terminal: m.Terminal, request: rq.FeePayment) -> Deferred:
        return self._write("fee_paid", terminal, fees.fee_paid, request)

    # OCLC Wise SIP2+

    def usage_debit(self, terminal: m.Terminal, request: rq.UsageDebit) -> Deferred:
        return self._write("usage_debit", terminal, usage.usage_debit, request)

    def payments_overview(self, terminal: m.Terminal, request: rq.PaymentsOverviewRequest) -> Deferred:
        return self._read("payments_overview", terminal, journal.payments_overview, request)

    def renewal_options(self, terminal: m.Terminal, request: rq.RenewalOptionsRequest) -> Deferred:
        return self._read("renewal_options", terminal, renewaloptions.renewal_options, request)

    def punch_card_options(self, terminal: m.Terminal, request: rq.PunchCardOptionsRequest) -> Deferred:
        return succeed(unoffered.punch_card_options(request))

    def punch_card_purchase(self, terminal: m.Terminal, request: rq.PunchCardPurchase) -> Deferred:
        return succeed(unoffered.punch_card_purchase(request))

    def save_username(self, terminal: m.Terminal, request: rq.UsernameRequest) -> Deferred:
        return succeed(unoffered.save_username(request))

    def record_usage(self, rows: tuple[usagestore.Row, ...], keep_from: str) -> Deferred:
        """Add usage figures (a write of the database process, batched with the others; it
        leaves the read cache alone: no answer depends on the figures)."""
        return self.runner.submit("record usage figures", self._call(usagestore.add, (rows, keep_from), None), True)

    def attempt_store(self) -> SQLiteAttempts:
        """The failed-login and wrong-PIN counters, in this database (sipgateway/attempts.py)."""
        return SQLiteAttempts(self)

    def start(self) -> None:
        """Start serving calls (the database process); twistd calls it from startService."""
        self.runner.start()

    def close(self) -> Deferred:
        return self.runner.close()


class MissingDatabase(ACSUnavailable):
    """The database file does not exist and creating it was not asked for."""


def _check_file(url: str, path: str, create: bool) -> None:
    """A missing file is created only when asked: otherwise a wrong path, an unmounted
    disk or a deleted file would silently become a new, empty library."""
    try:
        os.stat(path)
        return
    except FileNotFoundError:
        pass
    except OSError as e:
        raise ACSUnavailable(f"--database {url!r}: {path} cannot be reached by uid {os.geteuid()}: "
                             f"{e.strerror}") from None
    if not create:
        raise MissingDatabase(f"--database {url!r}: {path} does not exist; start once with --init to create an "
                              "empty library database there (or with --demo for the demo library)")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ACSUnavailable(f"--database {url!r}: cannot create {path}: directory {folder} does not exist")


def open_sqlite_acs(url_or_path: str, reactor, demo: bool = False, *, init: bool = False,
                    **kwargs: Any) -> SQLiteACS:
    """Open and migrate the database named by ``--database``, synchronously, and check that
    it can be written.  A missing file is created only with ``init`` or ``demo``; the demo
    fixtures are seeded when ``demo`` is asked and the database is empty (``seeded``)."""
    path = database_path(url_or_path)
    if path == ":memory:":
        raise ValueError(f"--database/database {url_or_path!r}: {IN_MEMORY}")
    if is_url(path):
        url_or_path = redact(path)
        check_postgresql(path, create=init or demo)
    else:
        path = os.path.abspath(path)  # twistd may change directory (--rundir) before the database process starts
        _check_file(url_or_path, path, create=init or demo)
    try:
        acs = SQLiteACS(path, reactor, **kwargs)
    except ValueError:
        raise
    except Exception as e:
        raise ACSUnavailable(f"--database {url_or_path!r}: cannot open the database: {e}") from e
    try:
        acs.runner.run_sync("require_writable", lambda conn: require_writable(conn, path), raw=True)
    except Exception as e:
        acs.close()
        raise ACSUnavailable(f"--database {url_or_path!r}: {e}") from e
    acs.seeded = acs.seed_demo() if demo else False  # only an empty database is seeded
    return acs
