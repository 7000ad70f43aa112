"""Per-device response deadlines (``deadline`` in milliseconds on a listener or an account):
the config reads and checks them, and the session hands every call to the backend with a
deadline a little before the device's, or answers by then itself (Clock-driven)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from sipgateway.config import ConfigError, load, parse_listen
from sipgateway.deadlines import DEADLINE_SLACK, answer_window
from sipgateway.gateway import Gateway
from sipgateway.session import ACS_TIMEOUT, Session
from sipgateway.settings import AccountSettings, ListenerSettings
from tests.fakes import FakeACS
from tests.test_session import T0
from tests.test_session_deadlines import CHECKOUT, DeadlineACS

TIMEOUT = 5.0


def test_the_shortest_deadline_applies_and_the_call_is_due_before_it() -> None:
    assert answer_window(30.0) == (30.0, DEADLINE_SLACK)
    assert answer_window(30.0, None, None) == (30.0, DEADLINE_SLACK)
    assert answer_window(30.0, 1.0, None) == pytest.approx((0.8, 0.1))
    assert answer_window(30.0, 2.0, 1.0) == pytest.approx((0.8, 0.1))
    assert answer_window(30.0, 0.5, 2.0) == pytest.approx((0.4, 0.05))   # 10 % of a short deadline
    assert answer_window(0.5, 1.0) == (0.5, DEADLINE_SLACK)              # acs_timeout is shorter still


def _config(tmp_path, text: str):
    path = tmp_path / "gw.ini"
    path.write_text(text)
    return load(str(path))


def test_deadline_keys_are_read_in_milliseconds(tmp_path) -> None:
    config = _config(tmp_path, "[listener:sorters]\nlisten = sip:tcp:6001\ndeadline = 1500\n\n"
                               "[account:sorter]\ndeadline = 800\n\n"
                               "[account:kiosk]\npassword = x\ninstitution = MAIN\ndeadline = 2000\n")
    assert config.listeners[0].settings.deadline == 1.5
    assert {a.name: a.settings.deadline for a in config.accounts} == {"sorter": 0.8, "kiosk": 2.0}
    assert parse_listen("sip:tcp:6001:deadline=250:interface=127.0.0.1").settings.deadline == 0.25
    assert parse_listen("sip:tcp:6001").settings.deadline is None


@pytest.mark.parametrize(("text", "error"), [
    ("[account:sorter]\ndeadline = soon\n",
     "[account:sorter]: deadline='soon' must be a whole number of milliseconds from 100 to 3600000"),
    ("[account:sorter]\ndeadline = 50\n",
     "[account:sorter]: deadline='50' must be a whole number of milliseconds from 100 to 3600000"),
    ("[account:sorter]\ndeadline = 1.5\n",
     "[account:sorter]: deadline='1.5' must be a whole number of milliseconds from 100 to 3600000"),
    ("[listener:s]\nlisten = sip:tcp:6001\ndeadline = -1\n",
     "[listener:s] listen: deadline='-1' must be a whole number of milliseconds from 100 to 3600000"),
])
def test_a_bad_deadline_is_an_error_naming_the_key(tmp_path, text: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        _config(tmp_path, text)
    assert str(e.value).startswith(error)


def test_a_bad_deadline_on_the_command_line_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"^--listen: deadline='1s' must be a whole number of milliseconds"):
        parse_listen("sip:tcp:6001:deadline=1s")


class Harness:
    def __init__(self, acs: FakeACS, listener: float | None = None, account: float | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.acs = acs
        self.out: list[bytes] = []
        gateway = Gateway(acs=acs, reactor=self.clock, acs_timeout=TIMEOUT,
                          account_settings={"sc1": AccountSettings(deadline=account)})
        self.session = Session(gateway, ListenerSettings(name="test", deadline=listener), self.out.append,
                               lambda: None, "test 127.0.0.1:5000")
        self.session.line_received(b"9300CNsc1|COpass1|CPMAIN|")
        assert self.out == [b"941\r"]
        self.acs.manual = True


@pytest.mark.parametrize(("listener", "account", "due"), [
    (1.0, None, (0.8, 0.9)), (None, 1.0, (0.8, 0.9)), (2.0, 0.5, (0.4, 0.45)), (None, None, (5.0, 5.1))])
def test_each_call_reaches_the_backend_due_before_the_devices_deadline(listener, account, due) -> None:
    h = Harness(DeadlineACS(), listener, account)
    h.acs.manual = False
    for step in (0.0, 0.03, 0.05, 0.2, 0.01, 1.0):
        h.clock.advance(step)
        arrival = h.clock.seconds()
        h.session.line_received(CHECKOUT)
        deadline = h.acs.terminals[-1].deadline
        assert arrival + due[0] - 1e-9 <= deadline <= arrival + due[1] + 1e-9


def test_a_backend_timed_by_the_session_is_given_up_on_before_the_devices_deadline() -> None:
    h = Harness(FakeACS(), listener=1.0)
    h.session.line_received(CHECKOUT)
    h.clock.advance(0.79)
    assert h.out == [b"941\r"]
    h.clock.advance(0.02)
    assert h.out[-1].startswith(b"120NUN") and f"AF{ACS_TIMEOUT}|".encode() in h.out[-1]
    h.acs.fire()                               # the late answer is dropped
    assert len(h.out) == 2


def test_a_login_on_a_listener_with_a_deadline_is_timed_by_it() -> None:
    clock = Clock()
    clock.advance(T0)
    acs = FakeACS()
    acs.manual = True
    out: list[bytes] = []
    Session(Gateway(acs=acs, reactor=clock, acs_timeout=TIMEOUT), ListenerSettings(deadline=0.5),
            out.append, lambda: None, "test 127.0.0.1:5000").line_received(b"9300CNsc1|COpass1|CPMAIN|")
    clock.advance(0.39)
    assert out == []
    clock.advance(0.02)
    assert out == [b"940\r"]
