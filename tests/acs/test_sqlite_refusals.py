"""An unknown patron and a wrong PIN, at every request that names a patron: the exact answer,
the circulation log row (none for the reads 23 and 63), and nothing else in the database
changed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal

import pytest
from twisted.internet.defer import Deferred

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS
from tests.acs.conftest import MAIN, Library, fired

UNKNOWN = "Unknown patron; please see staff"
BAD_PIN = "Invalid PIN"
NOBODY = "nobody"
ADA = "100001"           # PIN 1234
BOOK = "200001"
STAMP = "2024-01-05 10:15:00"
F = m.PatronFlag
DENIED = frozenset({F.CHARGE_DENIED, F.RENEWAL_DENIED, F.RECALL_DENIED, F.HOLD_DENIED})


def screen(text: str) -> m.Messages:
    return m.Messages(screen=(text,))


def unknown_status(pin_valid: bool | None) -> m.PatronStatus:
    return m.PatronStatus(patron_id=NOBODY, valid=False, pin_valid=pin_valid, flags=DENIED, messages=screen(UNKNOWN))


# Ada, with a wrong PIN: her name, flags and language, nothing that is only for the card holder
ADA_BAD_PIN = m.PatronStatus(patron_id=ADA, name="Ada Lovelace", valid=True, pin_valid=False, flags=frozenset(),
                             language="001", messages=screen(BAD_PIN))


def loan_refused(patron: str, message: str, patron_valid: bool, pin_valid: bool | None) -> m.CirculationResult:
    return m.CirculationResult(ok=False, patron_id=patron, item_id=BOOK, title="Sketch of the Analytical Engine",
                               renewal_ok=False, magnetic_media=False, desensitize=False, media_type="001",
                               patron_valid=patron_valid, pin_valid=pin_valid, messages=screen(message))


def information(status: m.PatronStatus) -> m.PatronInformation:
    fields = {f: getattr(status, f) for f in m.PatronStatus.__dataclass_fields__}
    return m.PatronInformation(**fields, item_list=m.ItemList.CHARGED)


def checkout(patron: str, pin: str, **kw) -> rq.CheckoutRequest:
    return rq.CheckoutRequest(patron_id=patron, item_id=BOOK, patron_pin=pin, **kw)


def payment(patron: str, pin: str) -> rq.FeePayment:
    return rq.FeePayment(patron, Decimal("1.00"), "USD", m.FeeType.OTHER, 0, patron_pin=pin)


Call = Callable[[SQLiteACS], Deferred]
#: (the request, its answer, the log row it writes: operation, patron, item, detail)
CASES: dict[str, tuple[Call, object, tuple | None]] = {
    "23 unknown, PIN given": (lambda a: a.patron_status(MAIN, rq.PatronStatusRequest(NOBODY, "1234")),
                              unknown_status(False), None),
    "23 unknown, no PIN": (lambda a: a.patron_status(MAIN, rq.PatronStatusRequest(NOBODY, None)),
                           unknown_status(None), None),
    "23 wrong PIN": (lambda a: a.patron_status(MAIN, rq.PatronStatusRequest(ADA, "0000")), ADA_BAD_PIN, None),
    "63 unknown": (lambda a: a.patron_information(MAIN, rq.PatronInformationRequest(NOBODY, "1234",
                                                                                    m.ItemList.CHARGED)),
                   information(unknown_status(False)), None),
    "63 wrong PIN": (lambda a: a.patron_information(MAIN, rq.PatronInformationRequest(ADA, "0000",
                                                                                      m.ItemList.CHARGED)),
                     information(ADA_BAD_PIN), None),
    "01 unknown": (lambda a: a.block_patron(MAIN, rq.BlockPatronRequest(NOBODY, "lost")),
                   unknown_status(None), ("block_patron", NOBODY, None, "unknown patron")),
    "25 unknown": (lambda a: a.patron_enable(MAIN, rq.PatronEnableRequest(NOBODY, "1234")),
                   unknown_status(False), ("patron_enable", NOBODY, None, "unknown patron")),
    "25 wrong PIN": (lambda a: a.patron_enable(MAIN, rq.PatronEnableRequest(ADA, "0000")),
                     ADA_BAD_PIN, ("patron_enable", ADA, None, "invalid PIN")),
    "11 unknown": (lambda a: a.checkout(MAIN, checkout(NOBODY, "1234")),
                   loan_refused(NOBODY, UNKNOWN, False, False), ("checkout", NOBODY, BOOK, UNKNOWN)),
    "11 wrong PIN": (lambda a: a.checkout(MAIN, checkout(ADA, "0000")),
                     loan_refused(ADA, BAD_PIN, True, False), ("checkout", ADA, BOOK, BAD_PIN)),
    "11 offline, unknown": (lambda a: a.checkout(MAIN, checkout(NOBODY, "1234", no_block=True)),
                            loan_refused(NOBODY, UNKNOWN, False, None), ("checkout", NOBODY, BOOK, UNKNOWN)),
    "29 unknown": (lambda a: a.renew(MAIN, checkout(NOBODY, "1234")),
                   loan_refused(NOBODY, UNKNOWN, False, False), ("renew", NOBODY, BOOK, UNKNOWN)),
    "29 wrong PIN": (lambda a: a.renew(MAIN, checkout(ADA, "0000")),
                     loan_refused(ADA, BAD_PIN, True, False), ("renew", ADA, BOOK, BAD_PIN)),
    "29 offline, unknown": (lambda a: a.renew(MAIN, checkout(NOBODY, "1234", no_block=True)),
                            loan_refused(NOBODY, UNKNOWN, False, None), ("renew", NOBODY, BOOK, UNKNOWN)),
    "65 unknown": (lambda a: a.renew_all(MAIN, rq.RenewAllRequest(NOBODY, "1234")),
                   m.RenewAllResult(ok=False, messages=screen(UNKNOWN)), ("renew_all", NOBODY, None, "unknown patron")),
    "65 wrong PIN": (lambda a: a.renew_all(MAIN, rq.RenewAllRequest(ADA, "0000")),
                     m.RenewAllResult(ok=False, messages=screen(BAD_PIN)), ("renew_all", ADA, None, "invalid PIN")),
    "15 unknown": (lambda a: a.hold(MAIN, rq.HoldRequest(m.HoldMode.ADD, NOBODY, "1234", item_id=BOOK)),
                   m.HoldResult(ok=False, patron_id=NOBODY, item_id=BOOK, messages=screen(UNKNOWN)),
                   ("hold+", NOBODY, BOOK, UNKNOWN)),
    "15 wrong PIN": (lambda a: a.hold(MAIN, rq.HoldRequest(m.HoldMode.ADD, ADA, "0000", item_id=BOOK)),
                     m.HoldResult(ok=False, patron_id=ADA, item_id=BOOK, messages=screen(BAD_PIN)),
                     ("hold+", ADA, BOOK, BAD_PIN)),
    "37 unknown": (lambda a: a.fee_paid(MAIN, payment(NOBODY, "1234")),
                   m.FeePaidResult(accepted=False, patron_id=NOBODY, messages=screen(UNKNOWN)),
                   ("fee_paid", NOBODY, None, UNKNOWN)),
    "37 wrong PIN": (lambda a: a.fee_paid(MAIN, payment(ADA, "0000")),
                     m.FeePaidResult(accepted=False, patron_id=ADA, messages=screen(BAD_PIN)),
                     ("fee_paid", ADA, None, BAD_PIN)),
}


def contents(db: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every table but the circulation log, row by row."""
    if getattr(db, "dialect", "sqlite") == "postgresql":
        tables = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                           "AND tablename != 'circulation_log'")]
    else:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT IN ('circulation_log', 'sqlite_sequence')")]
    return {t: sorted((tuple(r) for r in db.execute(f"SELECT * FROM {t}")), key=repr) for t in tables}


@pytest.mark.parametrize("case", CASES)
def test_an_unknown_patron_or_a_wrong_pin_is_refused_logged_and_changes_nothing(lib: Library, case: str) -> None:
    request, answer, logged = CASES[case]
    before = contents(lib.db)
    assert fired(request(lib.acs)) == answer
    rows = [(r["at"], r["operation"], r["ok"], r["account"], r["institution"], r["location"], r["patron"],
             r["item"], r["detail"]) for r in lib.log()]
    assert rows == ([] if logged is None else [(STAMP, logged[0], 0, "sc1", "MAIN", "MAIN", *logged[1:])])
    assert contents(lib.db) == before
