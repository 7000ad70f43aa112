"""Offline store-and-forward through a front gateway (``--acs sip2://`` to a back one on the
demo library), both the real twistd: the back stops, the front accepts checkins and
checkouts offline, is killed with SIGKILL while offline and again while replaying, and
after every restart the back's database holds each transaction acknowledged offline
exactly once, in the order the devices did them; a conflict made on purpose is in the
report."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipgateway.sip2 import parse
from tests.system.process import GatewayProcess, SIPClient, free_port, wait_until

DATE = "20240105    101500"
LOGIN = "9300CNkiosk|COkiosk-secret|CPMAIN|"
CONFIG = """\
[upstream]
offline = accept
offline_loan_days = 7

[account:kiosk]
password = kiosk-secret
institution = MAIN
"""


#: items not on loan, checked in offline to make the replay long enough to be killed in the middle
PADDING = ("1565921879", "0440242746", "660", "300001", "300002", "300003", "400001", "400002", "400003")


def checkout(patron: str, item: str) -> str:
    return f"11NN{DATE}{' ' * 18}AOMAIN|AA{patron}|AB{item}|AC|"


def checkin(item: str) -> str:
    return f"09N{DATE}{DATE}APMAIN|AOMAIN|AB{item}|AC|"


class Gateway:
    def __init__(self, workdir: Path, args: list[str]) -> None:
        workdir.mkdir()
        self.workdir, self.port = workdir, free_port()
        self.args = [*args, "--listen", f"sip:tcp:{self.port}:interface=127.0.0.1"]
        self.proc: GatewayProcess | None = None
        self.start()

    def start(self) -> None:
        self.proc = GatewayProcess(self.workdir, self.args, [self.port]).start()

    def rows(self, db: str, sql: str) -> list[tuple]:
        conn = sqlite3.connect(self.workdir / db)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@pytest.fixture
def running() -> Iterator[list[Gateway]]:
    gateways: list[Gateway] = []
    yield gateways
    for g in reversed(gateways):
        if g.proc is not None and g.proc.proc is not None and g.proc.proc.poll() is None:
            g.proc.stop()


def offline_98(port: int) -> bytes | None:
    with SIPClient(port) as c:
        assert c.request(LOGIN) == b"941"
        status = c.request("9900302.00")
    return status if status.startswith(b"98NYY") else None  # until then the breaker may still be closed


def ask(port: int, *requests: str) -> list[bytes]:
    with SIPClient(port) as c:
        assert c.request(LOGIN) == b"941"
        return [c.request(r) for r in requests]


def test_offline_transactions_reach_the_back_exactly_once_in_order_across_kills(tmp_path: Path,
                                                                                running: list) -> None:
    back = Gateway(tmp_path / "back", ["--database", f"sqlite:{tmp_path / 'back' / 'back.sqlite3'}", "--demo"])
    running.append(back)
    (tmp_path / "front.ini").write_text(CONFIG, encoding="utf-8")
    front = Gateway(tmp_path / "front", ["--config", str(tmp_path / "front.ini"), "--database",
                                         "sqlite:front.sqlite3", "--init", "--acs",
                                         f"sip2://127.0.0.1:{back.port}?login=sc1&password=pass1&timeout=2"])
    running.append(front)
    [out] = ask(front.port, checkout("100001", "200001"))
    assert out.startswith(b"121")  # on-line: applied by the back at once

    back.proc.stop()
    status = wait_until(lambda: offline_98(front.port), "the front to report on-line N")
    assert status.startswith(b"98NYYNNY")  # on-line N; checkin, checkout and offline Y by the policy

    # offline: acknowledged by the front, journaled before the answer
    first = ask(front.port, checkin("200001"), checkout("100001", "200002"), checkout("100001", "200003"),
                checkout("100001", "299999"))  # 299999 is unknown to the back: a conflict at replay
    for reply, code in zip(first, ("101", "121", "121", "121"), strict=True):
        assert reply.startswith(code.encode()), reply
        assert b"will be sent to the library system later" in reply
    assert b"|AH" in first[1]
    front.proc.kill9()  # mid-offline
    front.start()
    wait_until(lambda: offline_98(front.port), "the restarted front to report on-line N")
    second = ask(front.port, checkin("200002"), *(checkin(item) for item in PADDING), checkin(PADDING[-1]))
    assert all(r.startswith(b"101") for r in second), second
    renew = ask(front.port, f"29NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200003|AC|")[0]
    assert renew.startswith(b"300") and b"renewals cannot be done now" in renew  # 29 is refused offline

    back.start()
    # mid-replay: killed as soon as some entries are replayed and others are not
    def mid_replay() -> bool:
        states = dict(front.rows("front.sqlite3", "SELECT state, count(*) FROM offline_journal GROUP BY state"))
        return states.get("done", 0) + states.get("conflict", 0) > 0 and states.get("pending", 0) > 0

    wait_until(mid_replay, "the replay to start", every=0.005)
    front.proc.kill9()
    front.start()
    wait_until(lambda: not front.rows("front.sqlite3", "SELECT 1 FROM offline_journal WHERE state IN "
                                      "('pending', 'sent')"), "the replay to finish")

    loans = back.rows("back.sqlite3", "SELECT i.barcode, p.barcode, l.returned_at IS NOT NULL FROM loans l JOIN "
                      "items i ON i.id = l.item_id JOIN patrons p ON p.id = l.patron_id "
                      "WHERE i.barcode IN ('200001', '200002', '200003') ORDER BY l.id")
    assert loans == [("200001", "100001", 1), ("200002", "100001", 1), ("200003", "100001", 0)]
    log = back.rows("back.sqlite3", "SELECT operation, item, ok FROM circulation_log WHERE item IN "
                    f"('200001', '200002', '200003', '299999', {', '.join(repr(i) for i in PADDING)}) "
                    "AND operation IN ('checkout', 'checkin') "
                    "ORDER BY id")
    assert log == [("checkout", "200001", 1), ("checkin", "200001", 1), ("checkout", "200002", 1),
                   ("checkout", "200003", 1), ("checkout", "299999", 0), ("checkin", "200002", 1),
                   *[("checkin", item, 1) for item in PADDING]], log  # the last one sent twice: once

    report = json.loads(_cli("report", "--json", "--database", f"sqlite:{front.workdir / 'front.sqlite3'}"))
    assert report["counts"] == {"pending": 0, "sent": 0, "done": 3 + 1 + len(PADDING), "conflict": 1}
    [conflict] = [e for e in report["entries"] if e["state"] == "conflict"]
    assert conflict["item_id"] == "299999" and conflict["reply"].startswith("120")
    assert "is a conflict" in front.proc.log() or "is a conflict" in _all_logs(front)
    with SIPClient(front.port) as c:  # back on-line through the front
        assert c.request(LOGIN) == b"941"
        parse(c.request("9900302.00"))


def _cli(*argv: str) -> str:
    import io

    from sipgateway.acs.offline import cli
    from sipgateway.cli import build_parser
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(build_parser().parse_args(["offline", *argv]), out, err) == 0, err.getvalue()
    return out.getvalue()


def _all_logs(gateway: Gateway) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(gateway.workdir.glob("twistd-*.log")))


PASS_THROUGH_CONFIG = """\
[upstream]
offline = accept
offline_replay_login = lpl-sc
offline_replay_password = 1234
"""


def passthrough_offline_98(port: int) -> bytes | None:
    with SIPClient(port) as c:
        if c.request("9300CNsc1|COpass1|CPMAIN|") != b"941":
            return None  # the library system is unreachable but not yet out of service: refused
        status = c.request("9900302.00")
    return status if status.startswith(b"98NYY") else None


def test_pass_through_devices_log_in_offline_with_credentials_last_accepted(tmp_path: Path, running: list) -> None:
    back = Gateway(tmp_path / "back", ["--database", f"sqlite:{tmp_path / 'back' / 'back.sqlite3'}", "--demo"])
    running.append(back)
    (tmp_path / "front.ini").write_text(PASS_THROUGH_CONFIG, encoding="utf-8")
    front = Gateway(tmp_path / "front", ["--config", str(tmp_path / "front.ini"), "--database",
                                         "sqlite:front.sqlite3", "--init", "--acs",
                                         f"sip2://127.0.0.1:{back.port}?timeout=2"])
    running.append(front)
    with SIPClient(front.port) as c:
        assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"  # accepted by the back: remembered
    back.proc.stop()
    wait_until(lambda: passthrough_offline_98(front.port), "the front to go offline")
    front.proc.kill9()
    front.start()
    wait_until(lambda: passthrough_offline_98(front.port), "the restarted front to go offline")
    with SIPClient(front.port) as c:
        assert c.request("9300CNsc1|COwrong|CPMAIN|") == b"940"     # not what the back accepted
    with SIPClient(front.port) as c:
        assert c.request("9300CNlpl-sc|CO1234|CPMAIN|") == b"940"   # never logged in through the front
    with SIPClient(front.port) as c:
        assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
        assert c.request(checkout("100001", "200002")).startswith(b"121")
    back.start()
    wait_until(lambda: front.rows("front.sqlite3", "SELECT 1 FROM offline_journal WHERE state = 'done'"),
               "the replay")
    assert back.rows("back.sqlite3", "SELECT l.account FROM loans l JOIN items i ON i.id = l.item_id "
                     "WHERE i.barcode = '200002'") == [("lpl-sc",)]  # replayed as offline_replay_login
    log = _all_logs(front)
    assert "pass1" not in log and "COwrong" not in log
