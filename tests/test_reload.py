"""The reload machinery (sipgateway/reload/): everything checked before anything changes,
one log line for a refused reload, one reload at a time, SC accounts and [gateway] limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from sipgateway.config import AccountConfig, ConfigError, load
from sipgateway.gateway import Gateway
from sipgateway.reload import Change, Part, Reloader, Running
from sipgateway.reload.accounts import account_tables
from sipgateway.sighup import ReloadOnSIGHUP
from sipgateway.transports.limits import ConnectionCounter
from tests.fakes import FakeACS
from tests.logcapture import Logged, capture

BASE = load(None, listen=["sip:tcp:6001:interface=127.0.0.1"])
applied: list[str] = []
pending: list[Deferred] = []


@pytest.fixture
def logged() -> Iterator[Logged]:
    applied.clear()
    pending.clear()
    yield from capture()


def records(running: Running, new) -> Change:
    return Change(f"trace {new.trace}", lambda: applied.append(f"trace {new.trace}"))


def refuses(running: Running, new) -> None:
    raise ConfigError("[upstream] servers: nothing there")


def waits(running: Running, new) -> Deferred:
    d: Deferred = Deferred()
    pending.append(d)
    return d


class Keeper:
    """The SC accounts' keeper (SQLiteACS's reload methods)."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.written: list[list[dict]] = []

    def known_accounts(self) -> Deferred:
        return succeed(set(self.known))

    def write_accounts(self, rows: list[dict]) -> Deferred:
        self.written.append(rows)
        self.known |= {row["name"] for row in rows}
        return succeed([row["name"] for row in rows])


def running_with(configs: list, parts: tuple[Part, ...], keeper: Keeper | None = None) -> Running:
    def next_config():
        config = configs.pop(0)
        if isinstance(config, Exception):
            raise config
        return config

    acs = FakeACS()
    gateway = Gateway(acs=acs, accounts=keeper or acs, reactor=Clock())
    return Running(Clock(), gateway, ConnectionCounter(100, 10), None, MultiService(), BASE, next_config,
                   "gw.ini", parts)


RECORDS = Part("tracing", ("trace",), "tests.test_reload.records")


def test_a_config_that_does_not_load_is_refused_in_one_line(logged: Logged) -> None:
    running = running_with([ConfigError("[gateway] trace='perhaps' must be yes or no")], (RECORDS,))
    results: list = []
    Reloader(running).reload().addCallback(results.append)
    assert results == [False] and running.config is BASE and applied == []
    assert logged.lines("Reload") == ["Reload refused: [gateway] trace='perhaps' must be yes or no; "
                                      "the configuration in force is kept"]


def test_one_refusing_part_stops_every_part(logged: Logged) -> None:
    new = replace(BASE, trace=True)
    running = running_with([new], (RECORDS, Part("upstreams", ("upstreams",), "tests.test_reload.refuses")))
    results: list = []
    Reloader(running).reload().addCallback(results.append)
    assert results == [False] and applied == [] and running.config is BASE
    assert logged.lines("Reload") == ["Reload refused: [upstream] servers: nothing there; "
                                      "the configuration in force is kept"]


def test_applied_and_what_waits_for_a_restart_is_named(logged: Logged) -> None:
    new = replace(BASE, trace=True, acs_timeout=5.0)
    running = running_with([new], (RECORDS,))
    results: list = []
    Reloader(running).reload().addCallback(results.append)
    assert results == [True] and applied == ["trace True"] and running.config is new
    assert logged.lines("Configuration reloaded") == ["Configuration reloaded from gw.ini: trace True"]
    assert logged.lines("restart") == ["Reloaded gw.ini, but acs_timeout changed, which takes effect only at a "
                                       "restart (until then the values of the start-up stay in force)"]


def test_one_reload_at_a_time(logged: Logged) -> None:
    first, second = replace(BASE, trace=True), replace(BASE, trace=False)
    running = running_with([first, second], (Part("slow", ("trace",), "tests.test_reload.waits"), RECORDS))
    reloader = Reloader(running)
    results: list = []
    reloader.reload().addCallback(results.append)
    reloader.reload().addCallback(results.append)  # a second HUP while the first checks
    reloader.reload().addCallback(results.append)  # and a third: answered by the same second reload
    assert len(pending) == 1 and results == []
    pending[0].callback(None)
    assert len(pending) == 2 and applied == ["trace True"]
    pending[1].callback(None)
    assert results == [True, True, True] and applied == ["trace True", "trace False"]
    assert running.config is second


def test_sc_accounts_written_and_settings_in_force(logged: Logged) -> None:
    keeper = Keeper({"sc1"})
    new_account = AccountConfig(name="kiosk9", password="secret-9", institution="MAIN", idle_timeout=30.0)
    new = replace(BASE, accounts=(new_account,),
                  listeners=tuple(replace(li, settings=replace(li.settings, account="kiosk9"))
                                  for li in BASE.listeners))
    running = running_with([new], (Part("SC accounts", ("accounts",), "sipgateway.reload.accounts.prepare"),),
                           keeper)
    results: list = []
    Reloader(running).reload().addCallback(results.append)
    assert results == [True]
    assert [row["name"] for row in keeper.written[0]] == ["kiosk9"] and keeper.written[0][0]["password"] == "secret-9"
    assert (running.gateway.idle_timeouts, running.gateway.account_settings) == account_tables([new_account])
    assert "secret-9" not in "".join(logged.lines())

    # again with the same file: nothing is written again
    running.load = lambda: new
    Reloader(running).reload()
    assert len(keeper.written) == 1


def test_a_listener_naming_an_unknown_account_is_refused(logged: Logged) -> None:
    keeper = Keeper({"sc1"})
    new = replace(BASE, listeners=tuple(replace(li, settings=replace(li.settings, account="ghost"))
                                        for li in BASE.listeners))
    running = running_with([new], (Part("SC accounts", ("accounts",), "sipgateway.reload.accounts.prepare"),),
                           keeper)
    Reloader(running).reload()
    assert keeper.written == []
    [line] = logged.lines("Reload refused")
    assert "account='ghost' is not an SC account" in line


def test_connection_limits_and_trace(logged: Logged) -> None:
    new = replace(BASE, max_connections=5, max_connections_per_address=2, trace=True)
    running = running_with([new], (Part("gateway", ("max_connections", "max_connections_per_address", "trace"),
                                        "sipgateway.reload.gateway.prepare"),))
    Reloader(running).reload()
    assert (running.counter.max_total, running.counter.max_per_address, running.gateway.trace) == (5, 2, True)


def test_sighup_while_stopping_is_ignored(logged: Logged) -> None:
    calls: list[str] = []
    hup = ReloadOnSIGHUP(Clock(), lambda: calls.append("reload") or succeed(True), "gw.ini")
    assert hup.hup() is None and calls == []
    assert logged.lines("SIGHUP") == ["SIGHUP received while starting or stopping; ignored"]
    hup.running = True
    hup.hup()
    assert calls == ["reload"]


def test_with_workers_a_listener_cannot_be_added_by_a_reload(logged: Logged) -> None:
    """Worker processes adopt the parent's sockets: a listener a reload adds, removes or moves
    would be bound by every worker on its own.  Refused, naming why; the old config stays."""
    moved = load(None, listen=["sip:tcp:0:interface=127.0.0.1"])
    part = Part("listeners", ("listeners",), "sipgateway.reload.listeners.prepare")
    running = replace(running_with([moved], (part,)), workers=2)
    Reloader(running).reload()
    [line] = logged.lines("Reload refused")
    assert "listeners cannot be added, removed or moved while 2 worker processes serve them" in line
    assert running.config is BASE


def test_the_admin_listener_with_workers_changes_at_a_restart_only(logged: Logged) -> None:
    """Every worker adopts the admin port the parent bound at start-up: a reload keeps it and
    says that the new [admin] waits for a restart, as on one process."""
    first = load(None, listen=["sip:tcp:6001:interface=127.0.0.1"], admin="tcp:6080:interface=127.0.0.1",
                 workers="2")
    assert first.workers == 2 and first.admin.listen == "tcp:6080:interface=127.0.0.1"
    moved = load(None, listen=["sip:tcp:6001:interface=127.0.0.1"], admin="tcp:6081:interface=127.0.0.1",
                 workers="2")
    running = replace(running_with([moved], (RECORDS,)), workers=2, config=first)
    results: list = []
    Reloader(running).reload().addCallback(results.append)
    assert results == [True] and running.config is moved
    [line] = logged.lines("Reloaded")
    assert line.endswith("but admin changed, which takes effect only at a restart (until then the values of the "
                         "start-up stay in force)")


class _Upstream:
    """What the forwarding part changes on UpstreamACS: its rules and its recent answers' age."""

    def __init__(self) -> None:
        self.rules: dict = {}
        self.recent = type("Recent", (), {"age": 300.0})()


def _forwarding_config(tmp_path, rules: str, age: str = "300"):
    ini = tmp_path / f"gw-{abs(hash(rules + age))}.ini"
    ini.write_text(f"[upstream]\nservers = sip2://127.0.0.1:7001?login=gw&password=pw\ncached_answer_age = {age}\n"
                   f"[account:sorter]\npassword = pw1\ninstitution = MAIN\nrules =\n    {rules}\n", encoding="utf-8")
    return load(str(ini), listen=["sip:tcp:6001:interface=127.0.0.1"])


def test_rewrite_rules_and_cached_answer_age_are_reloaded(logged: Logged, tmp_path) -> None:
    old = _forwarding_config(tmp_path, "reply 10 set CL 1")
    new = _forwarding_config(tmp_path, "reply 10 set CL 2", age="60")
    upstream = _Upstream()
    backend = type("Backend", (), {"upstream": lambda self: upstream})()
    part = Part("forwarding", ("cached_answer_age",), "sipgateway.reload.forwarding.prepare")
    running = replace(running_with([new], (part,)), backend=backend, config=old)
    Reloader(running).reload()
    [line] = logged.lines("Configuration reloaded")
    assert "forwarding: rewrite rules of sorter; cached_answer_age 60 s" in line
    assert upstream.recent.age == 60.0
    assert upstream.rules["sorter"] == new.accounts[0].rules != old.accounts[0].rules
