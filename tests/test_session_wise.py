"""OCLC Wise SIP2+ messages through the session and the embedded library, exact bytes on the
wire: 98 with GG, 37 with purposes and CC, 39/40, 41/42, 70/71, and the features not offered
(Y1/Y2, Y3/Y4, X1/X2); Y5/Y6, which nobody documents, get 96."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.gateway import Gateway
from sipgateway.session import NOT_LOGGED_IN, Session
from sipgateway.settings import ListenerSettings
from sipgateway.sip2 import checksum, sip_date
from tests.acs.conftest import FAST, FakeNow
from tests.logcapture import Logged, capture

T0 = datetime(2024, 1, 5, 10, 15, 0)
D = "20240105    101500"
LICENCES = ("LIC_BETAAL", "LIC_MAKEN_BOEKINGEN", "LIC_VERLENGMOGELIJKHEDEN")


class Wise:
    """A session on the embedded demo library, the clocks of both at 5 January 2024 10:15."""

    def __init__(self, path: Path, licences: tuple[str, ...] = LICENCES) -> None:
        self.clock = Clock()
        self.clock.advance(T0.timestamp())
        self.acs = SQLiteACS.synchronous(str(path), now=FakeNow(T0), hash_iterations=FAST)
        self.acs.seed_demo()
        self.gateway = Gateway(acs=self.acs, reactor=self.clock, licences=licences)
        self.out: list[bytes] = []
        self.session = Session(self.gateway, ListenerSettings(name="test"), self.out.append, lambda: None,
                               "test 127.0.0.1:5000")
        self.now = sip_date(T0)

    def send(self, line: str) -> str:
        before = len(self.out)
        self.session.line_received(line.encode())
        assert len(self.out) == before + 1, self.out[before:]
        assert self.out[-1].endswith(b"\r")
        return self.out[-1][:-1].decode()

    def login(self) -> None:
        assert self.send("9300CNsc1|COpass1|CPMAIN|") == "941"

    def value(self, sql: str, *params):
        return self.acs.runner.conn.execute(sql, params).fetchone()[0]


@pytest.fixture
def wise(tmp_path: Path) -> Iterator[Wise]:
    w = Wise(tmp_path / "lib.sqlite3")
    w.login()
    yield w
    w.acs.close()


def with_ed(body: str, seq: str) -> str:
    text = f"{body}AY{seq}AZ"
    return text + checksum(text.encode())


def test_98_reports_the_configured_licences_in_gg(wise: Wise) -> None:
    assert wise.send("9900302.00") == (f"98YYYYYY999999{wise.now}2.00AOMAIN|AMMain Library|BXYYYYYYYYYYYYYYYY|"
                                       "ANMAIN|GGLIC_BETAAL / LIC_MAKEN_BOEKINGEN / LIC_VERLENGMOGELIJKHEDEN|")


def test_98_has_no_gg_without_licences(tmp_path: Path) -> None:
    plain = Wise(tmp_path / "plain.sqlite3", licences=())
    plain.login()
    assert plain.send("9900302.00") == (f"98YYYYYY999999{plain.now}2.00AOMAIN|AMMain Library|"
                                        "BXYYYYYYYYYYYYYYYY|ANMAIN|")
    plain.acs.close()


def test_37_buying_credit_and_paying_a_fine_from_it(wise: Wise) -> None:
    now = wise.now
    assert wise.send(f"37{D}0100USDBV20.00|AOMAIN|AA100002|AC|AD|CG|BK|FX12345|FC20.00|") == (
        f"38Y{now}AOMAIN|AA100002|BKP1|AF20.00 USD added to your credit; your credit is 20.00 USD|CC17.50|")
    # the demo fine (fee 1, 12.50) paid from the credit, named in CG as Wise joins ids
    assert wise.send(f"37{D}0109USDBV12.50|AOMAIN|AA100002|AC|AD|CG1+|BK|FX12345|FB12.50|") == (
        f"38Y{now}AOMAIN|AA100002|BKP2|AFPaid 12.50 USD towards 1 fee(s) from your credit; your credit is "
        "7.50 USD|CC17.50|")
    assert wise.value("SELECT deposit_cents FROM patrons WHERE barcode = '100002'") == 750
    assert wise.value("SELECT amount_cents - paid_cents FROM fees WHERE id = 1") == 0
    # credit cannot buy credit; the refusal reports the limit too
    assert wise.send(f"37{D}0109USDBV1.00|AOMAIN|AA100002|AC|AD|FC1.00|") == (
        f"38N{now}AOMAIN|AA100002|AFCredit cannot be bought with credit (payment type 09)|CC17.50|")


def test_37_purposes_that_are_no_amount_get_38_n(wise: Wise) -> None:
    assert wise.send(f"37{D}0100USDBV1.00|AOMAIN|AA100001|AC|FClots|") == (
        f"38N{wise.now}AOMAIN|AA100001|AFThe amount for the credit (FC) is not a number|")


def test_a_plain_37_gets_no_cc(wise: Wise) -> None:
    assert wise.send(f"37{D}0400USDBV1.00|AOMAIN|AA100002|AC|") == (
        f"38Y{wise.now}AOMAIN|AA100002|BKP1|AFPaid 1.00 USD; you now owe 11.50 USD|")


def test_39_usage_debit_known_and_anonymous(wise: Wise) -> None:
    now = wise.now
    assert wise.send(f"37{D}0100USDBV5.00|AOMAIN|AA100001|AC|FC5.00|").startswith("38Y")
    assert wise.send(f"39{D}AA100001|BV1.00|FH2910|FI09|") == (
        f"40Y{now}AA100001|AFPaid 1.00 USD from your credit|CC14.00|")
    assert wise.send(f"39{D}BV0.50|FH3100|FI00|") == f"40Y{now}AFPaid 0.50 USD|"
    assert wise.send(f"39{D}BV0.50|FH3100|FI09|") == (
        f"40N{now}AFAnonymous usage cannot be paid from a credit (payment method 09)|")
    assert wise.send(f"39{D}AA100001|BV1,00|FH2910|FI09|") == f"40N{now}AA100001|AFThe fee amount (BV) is not a number|"
    assert wise.send(f"39{D}AA100001|BV1.00|FH2910|FIcash|") == (
        f"40N{now}AA100001|AFThe payment method (FI) must be two digits|")
    assert wise.value("SELECT count(*) FROM journal WHERE kind = 'usage'") == 2


def test_39_sent_again_after_a_lost_reply_is_not_debited_twice(wise: Wise) -> None:
    assert wise.send(f"37{D}0100USDBV5.00|AOMAIN|AA100001|AC|FC5.00|").startswith("38Y")
    request = with_ed(f"39{D}AA100001|BV1.00|FH2910|FI09|", "4")
    first = wise.send(request)
    assert first.startswith("40Y") and wise.send(request) == first
    assert wise.value("SELECT deposit_cents FROM patrons WHERE barcode = '100001'") == 400


def test_41_payments_and_open_fees(wise: Wise) -> None:
    assert wise.send(f"37{D}0100USDBV5.00|AOMAIN|AA100001|AC|FX00001|FC5.00|").startswith("38Y")
    assert wise.send(f"39{D}AA100001|BV1.00|FH2910|FI09|").startswith("40Y")
    assert wise.send(f"41{D}AA100001|FJ01-01-2024|FK31-01-2024|") == (
        "42YZ05-01-2024 ~ Deposit ~ 5.00 ~ Cash ~ Credit|YZ05-01-2024 ~ Usage ~ 1.00 ~ Deposit ~ Usage 2910|"
        "AF2 payment(s)|")
    assert wise.send(f"41{D}AA100001|FJ01-01-2024|FK31-01-2024|FI01|FAY|") == "42AFNo payments in this period|"
    assert wise.send(f"41{D}AA100002|FJ01-12-2023|FK05-01-2024|FDY|") == (
        "42YZ22-12-2023 ~ overdue: 1565921879 Perl 5 desktop reference ~ Perl 5 desktop reference ~ 22-12-2023 ~ "
        "12.50 ~  ~ - - ~ 1 ~ 2 ~ - -|AF1 unpaid fee(s)|")
    assert wise.send(f"41{D}AA100001|FJ01-01-2024|FK31-01-2024|FGY|") == (
        "42AFPunch cards are not offered by this library|")
    assert wise.send(f"41{D}AA100001|FJ2024-01-01|FK31-01-2024|") == (
        "42AFThe date from (FJ) must be a date dd-mm-yyyy|")


def test_70_renewal_options(wise: Wise) -> None:
    assert wise.send(f"11NN{D}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|").startswith("121")
    # as Wise documents it: a | after the date, AB empty for every loan
    assert wise.send(f"70{D}|AA100001|AB|") == (
        "71GC200001~Sketch of the Analytical Engine~26-01-2024~26-01-2024~0.00~0.00~0~0.00~|FG0|"
        "AF1 of 1 item(s) can be renewed|")
    assert wise.send(f"70{D}AAnobody|AB|") == "71FG0|AFUnknown patron; please see staff|"


def test_punch_cards_and_user_names_are_not_offered(wise: Wise) -> None:
    assert wise.send(f"Y1{D}AA100001|") == "Y20AFPunch cards are not offered by this library|"
    assert wise.send(f"Y3{D}AA100001|FGBOEK-40-15.75-4100|FI00|") == (
        "Y40AFPunch cards are not offered by this library|")
    # X2's status is inverted: 1 = not OK; the manual's FP spelling is read as FO
    assert wise.send("X1FOjan12345|AA100001|AD1234|") == (
        "X21AA100001|FOjan12345|AFUser names are not offered by this library|")
    assert wise.send("X1FPjan12345|AA100001|AD1234|") == (
        "X21AA100001|FOjan12345|AFUser names are not offered by this library|")


def test_sip2_plus_before_login_gets_its_own_refusal(tmp_path: Path) -> None:
    w = Wise(tmp_path / "lib.sqlite3")
    assert w.send(f"39{D}AA100001|BV1.00|FH2910|FI09|") == f"40N{w.now}AA100001|AF{NOT_LOGGED_IN}|"
    assert w.send(f"70{D}AA100001|AB|") == f"71FG0|AF{NOT_LOGGED_IN}|"
    assert w.send("X1FOjan|AA100001|") == f"X21AA100001|FOjan|AF{NOT_LOGGED_IN}|"
    w.acs.close()


@pytest.fixture
def logged() -> Iterator[Logged]:
    yield from capture()


def test_y5_and_y6_are_undocumented_and_get_96(wise: Wise, logged: Logged) -> None:
    """Wise names Y5/Y6 but documents no layout: no reply could be built, so 96 and a log line."""
    assert wise.send(f"Y5{D}AA100001|") == "96"
    assert wise.send(f"Y6{D}AA100001|") == "96"
    line = logged.lines("unusable request")[0]  # the same kind of line again is rate-limited
    assert line == ("test 127.0.0.1:5000 (sc1): unusable request (at position 0: unknown message code ('Y5')): "
                    f"Y5{D}AA100001|")
