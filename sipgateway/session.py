"""The SIP2 session: one per connection, whatever the door.

connected → logged in (93, or bound by the listener) → SC status / patron session → end.
Requests are handled one at a time in arrival order, so replies leave in request order
however the ACS schedules its answers. The session knows nothing of sockets: it gets
lines, and writes replies through the callable it was given.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway import replies
from sipgateway.acs import model as m
from sipgateway.audit import AUDIT_CODES
from sipgateway.gateway import Gateway
from sipgateway.logmask import excerpt, mask
from sipgateway.repeatlog import RepeatedLines
from sipgateway.settings import DEFAULT_ACCOUNT_SETTINGS, ListenerSettings
from sipgateway.sip2 import ChecksumError, Message, SIP2Error, format_message, parse, parse_sip_date

#: requests whose replay would apply a side effect twice (DESIGN.md, protocol decisions)
SIDE_EFFECT_CODES = frozenset({b"11", b"09", b"29", b"65", b"37", b"15", b"19", b"01", b"25"})
#: requests without side effects whose formatted replies may be remembered (replymemo.py)
MEMO_CODES = frozenset({"99", "17", "23", "63"})
#: after this many 96 replies in a row to the same bytes the connection is closed
MAX_SAME_BAD = 3
#: requests queued behind one in progress; a real SC sends one at a time
MAX_PENDING = 16
#: how much later than arrival + acs_timeout a call's deadline may be (seconds)
DEADLINE_SLACK = 0.1

#: what a request handler returns: the ACS's Deferred and how to turn its result into a reply
Pending = tuple[Deferred, Callable[[Any], replies.Reply]]

REPLY_96 = b"96"
REPLY_96_ED = b"96AZFEF6"

NOT_LOGGED_IN = "Please log in first (93)"
ACS_FAILED = "The library system could not complete this request; please try again or ask staff"
ACS_TIMEOUT = "The library system did not answer in time; please try again or ask staff"


class Session:
    log = Logger()

    def __init__(self, gateway: Gateway, settings: ListenerSettings, write: Callable[[bytes], None],
                 lose_connection: Callable[[], None], peer: str, *, address: str | None = None) -> None:
        self.gateway = gateway
        self.settings = settings
        self._write = write
        self._lose_connection = lose_connection
        self.peer = peer
        #: the client's address alone: failed logins are counted per address across listeners
        self.address = address or peer
        self.account: m.Account | None = None
        self.bound_account: m.Account | None = None
        self.terminal: m.Terminal | None = None
        self.encoding = settings.encoding or "utf-8"
        self.error_detection = settings.error_detection or m.ErrorDetection.AUTO
        self._eol = settings.terminator or b"\r"  # ends every reply, 96 and 97 included
        self._pending: deque[bytes] = deque()
        self._busy = False
        self._closed = False
        self._token = 0  # identifies the request in progress (for late ACS answers)
        self._last_reply: bytes | None = None
        self._last_request: bytes | None = None  # side-effect request whose reply is cached
        self._bad_line: bytes | None = None
        self._bad_count = 0
        self._clock = gateway.reactor
        self.idle_timeout = settings.idle_timeout
        self._idle_call: Any = None
        self._login_call: Any = None
        self._memo_context: tuple = ()  # set at login (see _logged_in)
        #: log lines the client can cause again and again, rate-limited (the doors' too)
        self.repeated = RepeatedLines(self._clock)
        #: the backend answers by each call's deadline: no timer here (IACS.answers_by_deadline)
        self._backend_deadline = bool(getattr(gateway.acs, "answers_by_deadline", False))
        if settings.login_timeout > 0:
            self._login_call = self._clock.callLater(settings.login_timeout, self._login_timed_out)
        self._touch()

    # --- transport side ------------------------------------------------------------------

    def bind_account(self, account: m.Account) -> None:
        """Log the terminal in without a 93 (serial line, telnet login, TLS certificate)."""
        self.bound_account = account
        self._logged_in(account, "")

    def line_received(self, line: bytes) -> None:
        if self._closed:
            return
        self._touch()
        if self._busy:
            if len(self._pending) >= MAX_PENDING:
                self.log.warn("{peer}: more than {n} requests queued without waiting for replies; closing",
                              peer=self.who, n=MAX_PENDING)
                self.close()
                return
            self._pending.append(line)
            return
        self._handle(line)

    def connection_lost(self) -> None:
        self._closed = True
        self._pending.clear()
        self.repeated.close()
        for call in (self._idle_call, self._login_call):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._login_call = None

    def close(self) -> None:
        if not self._closed:
            self.connection_lost()
            self._lose_connection()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def who(self) -> str:
        return f"{self.peer} ({self.account.name})" if self.account else self.peer

    # --- timers --------------------------------------------------------------------------

    def _touch(self) -> None:
        timeout = self.idle_timeout
        if timeout <= 0:
            return
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(timeout)
        else:
            self._idle_call = self._clock.callLater(timeout, self._idle_timed_out)

    def _idle_timed_out(self) -> None:
        self._idle_call = None
        self.log.info("{peer}: idle for {s:.0f} s; closing", peer=self.who, s=self.idle_timeout)
        self.close()

    def _login_timed_out(self) -> None:
        self._login_call = None
        if self.account is None:
            self.log.info("{peer}: not logged in after {s:.0f} s; closing", peer=self.who,
                          s=self.settings.login_timeout)
            self.close()

    # --- one request -----------------------------------------------------------------------

    def _handle(self, line: bytes) -> None:
        line = line.strip(b" \t\0")
        if not line:
            return
        code = line[:2]
        if code == b"97":
            self._resend(line)
            return
        if code in SIDE_EFFECT_CODES and line == self._last_request and self._last_reply is not None:
            self.repeated.log(self.log.info, "repeated request", self.who,
                              "repeated {code} request answered from the last reply, not run again",
                              code=code.decode("ascii", "replace"))
            self._write(self._last_reply + self._eol)
            return
        try:
            msg = parse(line, self.encoding)
        except ChecksumError as e:
            self._bad(line, f"bad checksum: {e}")
            return
        except SIP2Error as e:
            self._bad(line, str(e))
            return
        has_ed = "AZ" in msg.fields or "AY" in msg.fields
        sequence = msg.fields.get("AY")
        if sequence is not None and not (sequence.isdigit() and sequence.isascii()):  # AY10 is fine
            self._bad(line, f"sequence number AY{sequence!r} is not a number")
            return
        if not has_ed and self.error_detection is m.ErrorDetection.REQUIRED:
            self._bad(line, "checksum required on this account/listener but the request has no AY/AZ")
            return
        handler = _HANDLERS.get(msg.code)
        if handler is None:
            self._bad(line, f"message code {msg.code!r} is not a request this gateway serves")
            return
        self._bad_line, self._bad_count = None, 0
        if self.gateway.trace:
            self.log.debug("{peer} -> {line}", peer=self.who, line=mask(line))
        if self.account is None and msg.code != "93":
            self.repeated.log(self.log.warn, "request before login", self.who,
                              "{code} before a successful login (93); refused", code=msg.code)
            self._send(msg, self._failure(msg, NOT_LOGGED_IN), line)
            return
        self._busy = True
        self._token += 1
        token = self._token
        if self._backend_deadline and self.terminal is not None:
            # the terminal of the request in progress carries its deadline to the backend; a
            # copy per request costs, so one serves while its deadline is no earlier than due
            deadline = self._clock.seconds() + self.gateway.acs_timeout
            current = self.terminal.deadline
            if current is None or current < deadline:
                self.terminal = self.terminal.until(deadline + DEADLINE_SLACK)
        try:
            d, build = handler(self, msg)
        except Exception:  # a bug: answer, log once, keep serving
            self._acs_failed(Failure(), msg, line, token)
            return
        if d.called and not isinstance(d.result, Deferred):
            # Fast local backends answer at once: no timer, no callback chain.
            result = d.result
            if isinstance(result, Failure):
                d.addErrback(_consumed)
                self._acs_failed(result, msg, line, token)
            else:
                self._answered(result, build, msg, line, token)
            return
        if self._backend_deadline:  # it answers by the deadline (or a write when its outcome is known)
            d.addCallbacks(self._answered, self._acs_failed, callbackArgs=(build, msg, line, token),
                           errbackArgs=(msg, line, token))
            return
        timer = self._clock.callLater(self.gateway.acs_timeout, self._acs_timed_out, msg, line, token)

        def stop_timer(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        d.addBoth(stop_timer)
        d.addCallbacks(self._answered, self._acs_failed, callbackArgs=(build, msg, line, token),
                       errbackArgs=(msg, line, token))

    def _answered(self, result: object, build: Callable[[Any], replies.Reply], msg: Message, line: bytes,
                  token: int) -> None:
        """The ACS answered: send the reply (remembered for the second where it may be)."""
        if token != self._token or not self._busy or self._closed:
            return  # answered already (timed out), or the connection is gone: the late answer is dropped
        memo_key = None
        if msg.code in MEMO_CODES:
            memo_key = (msg.code, id(result), self._memo_context, msg.get("AO"), msg.fixed.get("language"),
                        msg.fields.get("AY"), "AZ" in msg.fields)
            data = self.gateway.memo.get(memo_key, result)
            if data is not None:
                self._emit(data, line)
                self._next()
                return
        try:
            reply = build(result)
        except Exception:
            self._acs_failed(Failure(), msg, line, token)
            return
        data = self._format(msg, reply)
        if memo_key is not None:
            self.gateway.memo.put(memo_key, result, data)
        self._emit(data, line)
        self._audit(msg, reply)
        self._next()

    def _acs_failed(self, failure: Failure, msg: Message, line: bytes, token: int) -> None:
        if token != self._token or not self._busy or self._closed:
            return
        if failure.check(m.ACSTimeout):  # the backend's deadline passed: nothing was applied
            self.log.error("{peer}: ACS did not answer {code} in time; failure reply sent (nothing applied)",
                           peer=self.who, code=msg.code)
            self._send(msg, self._failure(msg, ACS_TIMEOUT), line)
            self._audit(msg, None)
            self._next()
            return
        self.log.failure("{peer}: ACS failed on {code} request", failure, peer=self.who, code=msg.code)
        self._send(msg, self._failure(msg, ACS_FAILED), line)
        self._audit(msg, None)
        self._next()

    def _acs_timed_out(self, msg: Message, line: bytes, token: int) -> None:
        if token != self._token or not self._busy:
            return
        self.log.error("{peer}: ACS did not answer {code} within {s:.0f} s; failure reply sent",
                       peer=self.who, code=msg.code, s=self.gateway.acs_timeout)
        self._send(msg, self._failure(msg, ACS_TIMEOUT), line)
        self._audit(msg, None)
        self._next()

    def _next(self) -> None:
        self._busy = False
        self._token += 1
        while self._pending and not self._busy and not self._closed:
            self._handle(self._pending.popleft())

    # --- replies -------------------------------------------------------------------------

    def _send(self, msg: Message, reply: replies.Reply, line: bytes) -> None:
        self._emit(self._format(msg, reply), line)

    def _format(self, msg: Message, reply: replies.Reply) -> bytes:
        code, fixed, fields = reply
        ed = self.error_detection is not m.ErrorDetection.OFF and ("AZ" in msg.fields or "AY" in msg.fields)
        try:
            data = format_message(code, fixed, fields, sequence=msg.fields.get("AY") if ed else None,
                                  error_detection=ed, encoding=self.encoding)
        except SIP2Error:
            self.log.failure("{peer}: could not format the {code} reply; failure reply sent instead",
                             peer=self.who, code=code)
            code, fixed, fields = self._failure(msg, ACS_FAILED)
            try:
                data = format_message(code, fixed, fields, sequence=msg.fields.get("AY") if ed else None,
                                      error_detection=ed, encoding=self.encoding)
            except SIP2Error:
                data = REPLY_96_ED if ed else REPLY_96
        return data

    def _emit(self, data: bytes, line: bytes) -> None:
        ed = data[-6:-4] == b"AZ"  # a reply carries AY/AZ exactly when the request's did (and ED is on)
        self._last_reply = data
        self._last_request = line if (line[:2] in SIDE_EFFECT_CODES and ed) else None
        if self.gateway.trace:
            self.log.debug("{peer} <- {line}", peer=self.who, line=mask(data))
        self._write(data + self._eol)

    def _resend(self, line: bytes) -> None:
        if self._last_reply is None:
            self.repeated.log(self.log.info, "97 before any reply", self.who,
                              "97 before any reply was sent; answered 96")
            self._write((REPLY_96_ED if self._wants_ed(line) else REPLY_96) + self._eol)
            return
        self._write(self._last_reply + self._eol)

    def _wants_ed(self, line: bytes) -> bool:
        return self.error_detection is not m.ErrorDetection.OFF and (b"AZ" in line[2:] or
                                                                     self.error_detection is m.ErrorDetection.REQUIRED)

    def _bad(self, line: bytes, reason: str) -> None:
        """Answer 96: nothing is executed; the SC is expected to resend."""
        if line == self._bad_line:
            self._bad_count += 1
        else:
            self._bad_line, self._bad_count = line, 1
        self.repeated.log(self.log.warn, "unusable request", self.who, "unusable request ({reason}): {line}",
                          reason=reason, line=excerpt(line))
        self._last_request = None
        data = REPLY_96_ED if self._wants_ed(line) else REPLY_96
        self._last_reply = data
        self._write(data + self._eol)
        if self._bad_count >= MAX_SAME_BAD:
            self.log.warn("{peer}: the same unusable request {n} times in a row; closing", peer=self.who,
                          n=self._bad_count)
            self.close()

    def _audit(self, msg: Message, reply: replies.Reply | None) -> None:
        """The audit line of a transaction with side effects (None: it failed)."""
        if msg.code in AUDIT_CODES and self.terminal is not None:
            self.gateway.audit.transaction(self.who, self.terminal, msg, reply)

    def _failure(self, msg: Message, screen: str) -> replies.Reply:
        institution = self.account.institution if self.account else ""
        return replies.failure(msg, institution, self._now(), screen, self.encoding)

    def _now(self) -> datetime:
        return self.gateway.now()

    def _institution(self, msg: Message) -> str:
        ao = msg.get("AO")
        if ao:
            return ao
        return self.account.institution if self.account else ""

    # --- login ---------------------------------------------------------------------------

    def _logged_in(self, account: m.Account, location: str) -> None:
        self.account = account
        extra = self.gateway.account_settings.get(account.name, DEFAULT_ACCOUNT_SETTINGS)
        self._eol = self.settings.terminator or extra.terminator or b"\r"
        self.terminal = m.Terminal(account=account.name, institution=account.institution,
                                   location=location or account.terminal_location,
                                   checked_in_ok=extra.checked_in_ok, address=self.address)
        self.encoding = self.settings.encoding or account.encoding or "utf-8"
        self.error_detection = self.settings.error_detection or account.error_detection
        # everything of the session a remembered reply depends on (see replymemo.py)
        self._memo_context = (account.name, account.institution, account.library_name, self.terminal.location,
                              self.encoding, self.error_detection)
        idle = self.gateway.idle_timeouts.get(account.name)
        if idle is not None and idle != self.idle_timeout:
            self.idle_timeout = idle
            if self._idle_call is not None and self._idle_call.active():
                self._idle_call.cancel()
            self._idle_call = None
            self._touch()
        if self._login_call is not None and self._login_call.active():
            self._login_call.cancel()
        self._login_call = None

    def _login(self, msg: Message) -> Pending:
        user = msg.get("CN") or ""
        password = msg.get("CO") or ""
        location = msg.get("CP") or ""
        if self.bound_account is not None:
            if user != self.bound_account.name:
                self.repeated.log(self.log.warn, "93 for another account", self.who,
                                  "93 for account {user!r} on a connection bound to {bound!r}; refused",
                                  user=user, bound=self.bound_account.name)
                return _ready(replies.login(False))

        def checked(account: m.Account | None) -> replies.Reply:
            if account is None:
                return replies.login(False)
            self._logged_in(account, location)
            self.log.info("{peer}: logged in as {user!r} (institution {inst!r})", peer=self.peer,
                          user=account.name, inst=account.institution)
            return replies.login(True)

        return self.gateway.authenticate(self.address, user, password, location, self.who, self.repeated), checked

    # --- the other requests ----------------------------------------------------------------

    def _status(self, msg: Message) -> Pending:
        account = self.account
        assert account is not None

        terminal = self.terminal

        def reply(status: m.ACSStatus) -> replies.Reply:
            return replies.acs_status(status, self._now(), self.encoding, institution=account.institution,
                                      library_name=account.library_name,
                                      terminal_location=terminal.location if terminal else "")

        return self.gateway.acs.status(terminal), reply

    def _patron_status(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        lang = msg.fixed.get("language", "000")
        return self.gateway.acs.patron_status(self.terminal, msg.get("AA") or "", _pin(msg)), (
            lambda p: replies.patron_status("24", p, inst, self._now(), self.encoding, lang))

    def _patron_info(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        summary = msg.fixed.get("summary", "")
        pos = summary.find("Y")
        item_list = m.ItemList(pos) if 0 <= pos <= 5 else None
        return self.gateway.acs.patron_information(
            self.terminal, msg.get("AA") or "", _pin(msg), item_list, _int(msg.get("BP")), _int(msg.get("BQ")),
        ), (lambda p: replies.patron_information(p, inst, self._now(), self.encoding,
                                                           msg.fixed.get("language", "000")))

    def _block(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        return self.gateway.acs.block_patron(
            self.terminal, msg.get("AA") or "", msg.get("AL") or "", msg.fixed.get("card_retained") == "Y",
        ), (lambda p: replies.patron_status("24", p, inst, self._now(), self.encoding))

    def _enable(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        return self.gateway.acs.patron_enable(self.terminal, msg.get("AA") or "", _pin(msg)), (
            lambda p: replies.patron_status("26", p, inst, self._now(), self.encoding))

    def _circulation_request(self, msg: Message) -> m.CheckoutRequest:
        f = msg.fixed
        policy = f.get("sc_renewal_policy", f.get("third_party_allowed", "N"))
        return m.CheckoutRequest(
            patron_id=msg.get("AA") or "",
            item_id=msg.get("AB") or "",
            patron_pin=_pin(msg),
            no_block=f.get("no_block") == "Y",
            nb_due_date=_date(f.get("nb_due_date")),
            renewal_policy=policy == "Y" and msg.code == "11",
            third_party=policy == "Y" and msg.code == "29",
            fee_acknowledged=msg.get("BO") == "Y",
            cancel=msg.get("BI") == "Y",
            item_properties=msg.get("CH"),
            title_id=msg.get("AJ") or None,
        )

    def _checkout(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        return self.gateway.acs.checkout(self.terminal, self._circulation_request(msg)), (
            lambda r: replies.circulation("12", r, inst, self._now(), self.encoding))

    def _renew(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        if not msg.get("AB") and not msg.get("AJ"):
            return _ready(self._failure(msg, "Renew needs an item identifier (AB) or a title (AJ)"))
        return self.gateway.acs.renew(self.terminal, self._circulation_request(msg)), (
            lambda r: replies.circulation("30", r, inst, self._now(), self.encoding))

    def _renew_all(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        return self.gateway.acs.renew_all(self.terminal, msg.get("AA") or "", _pin(msg),
                                          msg.get("BO") == "Y"), (
            lambda r: replies.renew_all(r, inst, self._now(), self.encoding))

    def _checkin(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        f = msg.fixed
        request = m.CheckinRequest(
            item_id=msg.get("AB") or "",
            return_date=_date(f.get("return_date")),
            current_location=msg.get("AP") or "",
            no_block=f.get("no_block") == "Y",
            cancel=msg.get("BI") == "Y",
            item_properties=msg.get("CH"),
        )
        return self.gateway.acs.checkin(self.terminal, request), (
            lambda r: replies.checkin(r, inst, self._now(), self.encoding))

    def _item_info(self, msg: Message) -> Pending:
        return self.gateway.acs.item_information(self.terminal, msg.get("AB") or ""), (
            lambda r: replies.item_information(r, self._now(), self.encoding))

    def _item_update(self, msg: Message) -> Pending:
        return self.gateway.acs.item_status_update(self.terminal, msg.get("AB") or "",
                                                   msg.get("CH") or ""), (
            lambda r: replies.item_status_update(r, self._now(), self.encoding))

    def _hold(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        hold_type = msg.get("BY")
        request = m.HoldRequest(
            mode=m.HoldMode(msg.fixed.get("hold_mode", "+")),
            patron_id=msg.get("AA") or "",
            patron_pin=_pin(msg),
            item_id=msg.get("AB") or None,
            title_id=msg.get("AJ") or None,
            pickup_location=msg.get("BS") or None,
            expiration_date=_date(msg.get("BW")),
            hold_type=int(hold_type) if hold_type and hold_type.isdigit() else None,
            fee_acknowledged=msg.get("BO") == "Y",
        )
        if not request.item_id and not request.title_id:
            return _ready(self._failure(msg, "A hold needs an item identifier (AB) or a title (AJ)"))
        return self.gateway.acs.hold(self.terminal, request), (
            lambda r: replies.hold(r, inst, self._now(), self.encoding))

    def _end_session(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        return self.gateway.acs.end_session(self.terminal, msg.get("AA") or "", _pin(msg)), (
            lambda r: replies.end_session(r, inst, self._now(), self.encoding))

    def _fee_paid(self, msg: Message) -> Pending:
        inst = self._institution(msg)
        f = msg.fixed
        try:
            amount = Decimal(msg.get("BV") or "")
        except InvalidOperation:
            return _ready(self._failure(msg, "The fee amount (BV) is not a number"))
        if not amount.is_finite():
            return _ready(self._failure(msg, "The fee amount (BV) is not a number"))
        fee_type = int(f.get("fee_type", "01"))
        payment = m.FeePayment(
            patron_id=msg.get("AA") or "",
            amount=amount,
            currency=f.get("currency_type", ""),
            fee_type=m.FeeType(fee_type) if 1 <= fee_type <= 9 else m.FeeType.OTHER,
            payment_type=int(f.get("payment_type", "00")),
            patron_pin=_pin(msg),
            fee_id=msg.get("CG") or None,
            transaction_id=msg.get("BK") or None,
        )
        return self.gateway.acs.fee_paid(self.terminal, payment), (
            lambda r: replies.fee_paid(r, inst, self._now(), self.encoding))


#: request code -> Session method answering it (one table for all sessions: 10,000 idle
#: connections should not each carry a dict of bound methods)
_HANDLERS: dict[str, Callable[[Session, Message], Pending]] = {
    "93": Session._login, "99": Session._status, "23": Session._patron_status, "63": Session._patron_info,
    "01": Session._block, "25": Session._enable, "11": Session._checkout, "29": Session._renew,
    "65": Session._renew_all, "09": Session._checkin, "17": Session._item_info, "19": Session._item_update,
    "15": Session._hold, "35": Session._end_session, "37": Session._fee_paid,
}


def _ready(reply: replies.Reply) -> Pending:
    """A reply known without asking the ACS."""
    return succeed(reply), _identity


def _consumed(failure: Failure) -> None:
    """Marks a failure as handled (it was answered and logged already)."""


def _identity(reply: replies.Reply) -> replies.Reply:
    return reply


def _pin(msg: Message) -> str | None:
    """The patron PIN; an empty AD means none was entered."""
    return msg.get("AD") or None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _date(value: str | None) -> datetime | None:
    if not value or not value.strip():
        return None
    try:
        return parse_sip_date(value)
    except SIP2Error:
        return None
