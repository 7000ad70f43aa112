"""The gateway keeps who may log in (IAccounts) apart from circulation (IACS): a backend
that keeps no SC accounts (a library system reached over SIP2) serves circulation while
logins and the accounts doors name are checked by another provider."""

from __future__ import annotations

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from zope.interface import implementer, implementer_only

from sipgateway.acs import model as m
from sipgateway.acs.interface import IACS, IAccounts
from sipgateway.gateway import Gateway
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from tests.fakes import FakeACS

ITEM = b"1720240105    101500AOLAKE|AB200001|AC|"


@implementer_only(IACS)
class CirculationOnly(FakeACS):
    """Circulation only: asking it about accounts is a bug."""

    def authenticate(self, username, password, location):
        raise AssertionError("a circulation-only backend was asked to check a login")

    def account(self, name):
        raise AssertionError("a circulation-only backend was asked for an account")


@implementer(IAccounts)
class Accounts:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.lake = m.Account(name="lake", institution="LAKE")

    def authenticate(self, username, password, location):
        self.asked.append(("authenticate", username))
        return succeed(self.lake if (username, password) == ("lake", "secret") else None)

    def account(self, name):
        self.asked.append(("account", name))
        return succeed(self.lake if name == "lake" else None)


def session(gateway: Gateway, out: list[bytes], settings: ListenerSettings | None = None) -> Session:
    return Session(gateway, settings or ListenerSettings(name="t"), out.append, lambda: None, "t 10.0.0.1:4000",
                   address="10.0.0.1")


def test_a_93_is_checked_by_the_accounts_and_requests_go_to_the_acs() -> None:
    acs, accounts, out = CirculationOnly(), Accounts(), []
    s = session(Gateway(acs=acs, accounts=accounts, reactor=Clock()), out)
    s.line_received(b"9300CNlake|COwrong|CPLAKE|")
    s.line_received(b"9300CNlake|COsecret|CPLAKE|")
    s.line_received(ITEM)
    assert out[:2] == [b"940\r", b"941\r"] and out[2].startswith(b"18")
    assert accounts.asked == [("authenticate", "lake"), ("authenticate", "lake")]
    assert acs.calls == [("item_information", "200001")]
    assert s.terminal is not None and s.terminal.institution == "LAKE"


def test_an_account_a_door_names_is_looked_up_in_the_accounts() -> None:
    acs, accounts, out = CirculationOnly(), Accounts(), []
    s = session(Gateway(acs=acs, accounts=accounts, reactor=Clock()), out,
                ListenerSettings(name="serial", account="lake", idle_timeout=0, login_timeout=0))
    s.bind("lake", "listener setting 'account'")
    s.line_received(ITEM)
    assert accounts.asked == [("account", "lake")]
    assert s.account == accounts.lake and out[0].startswith(b"18")


def test_an_acs_that_keeps_no_accounts_needs_a_provider() -> None:
    with pytest.raises(TypeError, match="accounts="):
        Gateway(acs=CirculationOnly(), reactor=Clock())
