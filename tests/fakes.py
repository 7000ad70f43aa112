"""An in-memory IACS for session tests: canned answers, recorded calls, and Deferreds the
test fires by hand (to drive ordering and timeouts)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from sipgateway.acs import model as m
from sipgateway.acs import wise as w
from sipgateway.acs.interface import IACS, IAccounts

ALL_CODES = frozenset({"23", "63", "01", "25", "11", "29", "65", "09", "17", "19", "15", "35", "37",
                       "39", "41", "70"})
DUE = datetime(2024, 1, 26, 23, 59, 59)


@implementer(IACS, IAccounts)
class FakeACS:
    supported = ALL_CODES

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.manual = False          # True: every call returns an unfired Deferred
        self.pending: list[tuple[Deferred, object]] = []
        self.raise_on: set[str] = set()
        self.accounts = {
            "sc1": ("pass1", m.Account(name="sc1", institution="MAIN", library_name="Main Library")),
            "ascii": ("pw", m.Account(name="ascii", institution="UWOLS", encoding="ascii")),
            "strict": ("pw", m.Account(name="strict", institution="MAIN",
                                       error_detection=m.ErrorDetection.REQUIRED)),
            "quiet": ("pw", m.Account(name="quiet", institution="MAIN", error_detection=m.ErrorDetection.OFF)),
        }

    def _answer(self, name: str, value: object, *args: object) -> Deferred:
        self.calls.append((name, *args))
        if name in self.raise_on:
            return fail(RuntimeError(f"backend broke in {name}"))
        if self.manual:
            d: Deferred = Deferred()
            self.pending.append((d, value))
            return d
        return succeed(value)

    def fire(self, index: int = 0) -> None:
        d, value = self.pending.pop(index)
        d.callback(value)

    def authenticate(self, username, password, location):
        entry = self.accounts.get(username)
        ok = entry is not None and entry[0] == password
        return self._answer("authenticate", entry[1] if ok else None, username, location)

    def account(self, name):
        entry = self.accounts.get(name)
        return succeed(entry[1] if entry else None)

    def status(self, terminal, request):
        return self._answer("status", m.ACSStatus(supported=self.supported), terminal)

    def _patron(self, patron_id, pin, cls=m.PatronStatus, **extra):
        known = patron_id == "100001"
        return cls(
            patron_id=patron_id, name="Ada Lovelace" if known else "", valid=known,
            pin_valid=None if pin is None else pin == "1234",
            flags=frozenset() if known else m.UNKNOWN_PATRON_FLAGS,
            currency="USD" if known else None, fee_amount=Decimal("0.00") if known else None, **extra)

    def patron_status(self, terminal, request):
        patron_id, patron_pin = request.patron_id, request.patron_pin
        return self._answer("patron_status", self._patron(patron_id, patron_pin), patron_id, patron_pin)

    def patron_information(self, terminal, request):
        r = request
        patron_id, patron_pin, item_list, start, end = r.patron_id, r.patron_pin, r.item_list, r.start, r.end
        items = ("200001", "200002") if item_list is m.ItemList.CHARGED else ()
        value = self._patron(patron_id, patron_pin, m.PatronInformation, charged_count=2, item_list=item_list,
                             items=items)
        return self._answer("patron_information", value, patron_id, patron_pin, item_list, start, end)

    def block_patron(self, terminal, request):
        patron_id, message, card_retained = request.patron_id, request.message, request.card_retained
        value = m.PatronStatus(patron_id=patron_id, name="Ada Lovelace", valid=True,
                               flags=m.UNKNOWN_PATRON_FLAGS, messages=m.Messages(screen=(message,)))
        return self._answer("block_patron", value, patron_id, message, card_retained)

    def patron_enable(self, terminal, request):
        patron_id, patron_pin = request.patron_id, request.patron_pin
        return self._answer("patron_enable", self._patron(patron_id, patron_pin), patron_id)

    def checkout(self, terminal, request):
        value = m.CirculationResult(ok=True, patron_id=request.patron_id, item_id=request.item_id,
                                    title="Harry Potter y el cáliz de fuego", renewal_ok=False,
                                    magnetic_media=False, desensitize=True, due_date=DUE, media_type="001")
        return self._answer("checkout", value, request)

    def renew(self, terminal, request):
        value = m.CirculationResult(ok=True, patron_id=request.patron_id, item_id=request.item_id,
                                    title="Dune", renewal_ok=True, magnetic_media=False, desensitize=True,
                                    due_date=DUE)
        return self._answer("renew", value, request)

    def renew_all(self, terminal, request):
        patron_id = request.patron_id
        value = m.RenewAllResult(ok=True, renewed=("200001",), unrenewed=("200002",))
        return self._answer("renew_all", value, patron_id)

    def checkin(self, terminal, request):
        value = m.CheckinResult(ok=True, item_id=request.item_id, permanent_location="MAIN", title="Dune",
                                resensitize=True, magnetic_media=False, sort_bin="05")
        return self._answer("checkin", value, request)

    def item_information(self, terminal, request):
        item_id = request.item_id
        value = m.ItemInformation(item_id=item_id, circulation_status=m.CirculationStatus.AVAILABLE,
                                  title="Dune", media_type="001")
        return self._answer("item_information", value, item_id)

    def item_status_update(self, terminal, request):
        item_id, item_properties = request.item_id, request.item_properties
        value = m.ItemStatusUpdateResult(ok=True, item_id=item_id, title="Dune", item_properties=item_properties)
        return self._answer("item_status_update", value, item_id, item_properties)

    def hold(self, terminal, request):
        value = m.HoldResult(ok=True, patron_id=request.patron_id, queue_position=1, title=request.title_id,
                             item_id=request.item_id)
        return self._answer("hold", value, request)

    def end_session(self, terminal, request):
        patron_id = request.patron_id
        return self._answer("end_session", m.EndSessionResult(ended=True, patron_id=patron_id), patron_id)

    def fee_paid(self, terminal, payment):
        value = m.FeePaidResult(accepted=True, patron_id=payment.patron_id, transaction_id=payment.transaction_id,
                                fee_limit=Decimal("10.00") if payment.purposes_given else None)
        return self._answer("fee_paid", value, payment)

    # OCLC Wise SIP2+

    def usage_debit(self, terminal, request):
        value = w.UsageDebitResult(accepted=True, patron_id=request.patron_id,
                                   fee_limit=None if request.patron_id is None else Decimal("9.00"),
                                   messages=m.Messages(screen=(f"{request.amount} paid",)))
        return self._answer("usage_debit", value, request)

    def payments_overview(self, terminal, request):
        value = w.PaymentsOverview(payments=(
            w.Payment(request.date_from, "Registration", Decimal("10.00"), "Cash", "Boete"),
            w.Payment(request.date_from, "Contribution", Decimal("15.00"), "Cash", "Contributie")))
        return self._answer("payments_overview", value, request)

    def renewal_options(self, terminal, request):
        value = w.RenewalOptions(options=(w.RenewalOption(
            "200001", "Dune", DUE.date(), None, Decimal("0.25"), Decimal("0.00"), 0, Decimal("0.00"),
            "On hold for another patron"),))
        return self._answer("renewal_options", value, request)

    def punch_card_options(self, terminal, request):
        return self._answer("punch_card_options", w.PunchCardOptions(ok=False), request)

    def punch_card_purchase(self, terminal, request):
        return self._answer("punch_card_purchase", w.PunchCardPurchaseResult(ok=False), request)

    def save_username(self, terminal, request):
        value = w.UsernameResult(ok=True, patron_id=request.patron_id, username=request.username)
        return self._answer("save_username", value, request)

    def close(self):
        return succeed(None)
