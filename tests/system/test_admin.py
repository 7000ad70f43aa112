"""The admin listener of the real twistd, asked over HTTP by a real client: /metrics moves
by exactly the requests sent, /sessions shows a session while it is open, /readyz says
why it is not ready when the database file is gone; and the JSON log has the keys."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.system.process import GatewayProcess, SIPClient, free_port

DATE = "20240105    101500"
CHECKOUT = f"11NN{DATE}{DATE}AOMAIN|AA100001|AB200001|AC|AD1234|"
CHECKIN = f"09N{DATE}{DATE}APMAIN|AOMAIN|AB200001|AC|"
WAIT = 30.0   # bound of every poll below: generous for a loaded machine
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def start(tmp_path: Path, twistd_args: tuple[str, ...] = ()) -> tuple[GatewayProcess, int, str, Path]:
    port, admin = free_port(), free_port()
    db = tmp_path / "gw.sqlite3"
    config = tmp_path / "gw.ini"
    config.write_text(f"[gateway]\ndatabase = sqlite:{db}\ndemo = yes\n\n"
                      f"[listener:raw]\nlisten = sip:tcp:{port}:interface=127.0.0.1\n\n"
                      f"[admin]\nlisten = tcp:{admin}:interface=127.0.0.1\n", encoding="utf-8")
    proc = GatewayProcess(tmp_path, ["--config", str(config)], [port, admin], twistd_args=twistd_args).start()
    return proc, port, f"http://127.0.0.1:{admin}", db


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["content-type"], e.read()


def scrape(base: str) -> Samples:
    status, content_type, body = get(base + "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode("utf-8")) for s in family.samples}


def moved(before: Samples, after: Samples, prefix: str) -> dict:
    """The samples named ``prefix``… that changed, and by how much."""
    return {key: after[key] - before.get(key, 0) for key in after
            if key[0].startswith(prefix) and after[key] != before.get(key, 0)}


def sessions(base: str) -> list[dict]:
    status, content_type, body = get(base + "/sessions")
    assert status == 200 and content_type == "application/json"
    return json.loads(body)


def test_metrics_move_by_exactly_the_requests_served_and_sessions_show_the_open_one(tmp_path: Path) -> None:
    proc, port, base, _ = start(tmp_path, ("--logger", "sipgateway.logjson.observer"))
    try:
        assert get(base + "/healthz")[::2] == (200, b"ok\n")
        assert sessions(base) == []
        before = scrape(base)
        with SIPClient(port, timeout=WAIT) as wrong:
            assert wrong.request("9300CNsc1|COnot-it|CPMAIN|") == b"940"
        with SIPClient(port, timeout=WAIT) as kiosk:
            assert kiosk.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
            assert kiosk.request("9900302.00").startswith(b"98")
            assert kiosk.request(CHECKOUT).startswith(b"121")
            assert kiosk.request(CHECKIN).startswith(b"101")
            local_port = kiosk.sock.getsockname()[1]
            after = scrape(base)
            (live,) = sessions(base)
            assert {k: live[k] for k in ("listener", "peer", "account", "terminal", "served", "last_code")} == {
                "listener": "raw", "peer": f"127.0.0.1:{local_port}", "account": "sc1", "terminal": "MAIN",
                "served": 4, "last_code": "09"}
            assert live["since"] <= live["last_at"]
        raw = ("listener", "raw")
        assert moved(before, after, "sipgateway_requests_total") == {
            ("sipgateway_requests_total", (("account", ""), ("code", "93"), raw, ("outcome", "refused"))): 1,
            ("sipgateway_requests_total", (("account", "sc1"), ("code", "93"), raw, ("outcome", "ok"))): 1,
            ("sipgateway_requests_total", (("account", "sc1"), ("code", "99"), raw, ("outcome", "ok"))): 1,
            ("sipgateway_requests_total", (("account", "sc1"), ("code", "11"), raw, ("outcome", "ok"))): 1,
            ("sipgateway_requests_total", (("account", "sc1"), ("code", "09"), raw, ("outcome", "ok"))): 1,
        }
        assert moved(before, after, "sipgateway_logins_total") == {
            ("sipgateway_logins_total", (("outcome", "failed"),)): 1,
            ("sipgateway_logins_total", (("outcome", "ok"),)): 1}
        counts = moved(before, after, "sipgateway_request_duration_seconds_count")
        assert counts == {("sipgateway_request_duration_seconds_count", (("code", code),)): n
                          for code, n in (("93", 2), ("99", 1), ("11", 1), ("09", 1))}
        assert after[("sipgateway_connections", (raw,))] == 1
        assert after[("sipgateway_acs_up", ())] == 1
        # the checkout, the checkin and the failed login were written by the database process
        assert moved(before, after, "sipgateway_db_batch_jobs_sum")[("sipgateway_db_batch_jobs_sum", ())] >= 3
        assert after[("sipgateway_db_commit_seconds_count", ())] >= 3
        end = time.monotonic() + WAIT
        while sessions(base):
            assert time.monotonic() < end, "the closed session is still listed"
            time.sleep(0.05)
        assert scrape(base)[("sipgateway_connections", (raw,))] == 0
        # the JSON log: one object a line, the audit lines with their keys, the patron masked
        end = time.monotonic() + WAIT
        while '"code": "09"' not in proc.log():
            assert time.monotonic() < end, "no audit line for the checkin"
            time.sleep(0.05)
        objects = [json.loads(line) for line in proc.log().splitlines()]
        (checkout,) = [o for o in objects if o.get("code") == "11"]
        assert {k: checkout[k] for k in ("listener", "peer", "account", "code", "outcome", "patron", "item")} == {
            "listener": "raw", "peer": f"127.0.0.1:{local_port}", "account": "sc1", "code": "11", "outcome": "ok",
            "patron": "****01", "item": "200001"}
        (failed,) = [o for o in objects if "login failed" in o["text"]]
        assert (failed["listener"], failed["account"], failed["level"]) == ("raw", "sc1", "warn")
        assert "pass1" not in proc.log() and "not-it" not in proc.log() and "100001" not in proc.log()
    finally:
        proc.stop()


def test_readyz_is_503_with_the_reason_once_the_database_file_is_gone(tmp_path: Path) -> None:
    proc, _, base, db = start(tmp_path)
    try:
        end = time.monotonic() + WAIT
        while (answer := get(base + "/readyz"))[0] != 200:   # until the database process has opened it
            assert answer[2] == b"the library system does not answer: the database process has not opened the " \
                                b"database\n", answer
            assert time.monotonic() < end, "never ready"
            time.sleep(0.05)
        assert answer == (200, "text/plain; charset=utf-8", b"ready\n")
        db.unlink()
        end = time.monotonic() + WAIT
        while (answer := get(base + "/readyz"))[0] == 200:   # the database process's heartbeat notices
            assert time.monotonic() < end, "still ready without its database file"
            time.sleep(0.1)
        # found missing here, or deleted by the database process's heartbeat: whichever comes first
        assert answer[0] == 503 and answer[2] in (
            f"the library system does not answer: the database file {db} {why}\n".encode()
            for why in ("is missing", "was deleted"))
        assert scrape(base)[("sipgateway_acs_up", ())] == 0
        assert get(base + "/healthz")[::2] == (200, b"ok\n")   # the process itself is alive
    finally:
        proc.stop()


def test_an_unprotected_admin_listener_on_every_interface_stops_start_up(tmp_path: Path) -> None:
    port = free_port()
    proc = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1", "--database",
                                     f"sqlite:{tmp_path / 'gw.sqlite3'}", "--demo", "--admin", f"tcp:{free_port()}"],
                          [port])
    try:
        proc.start()
        raise AssertionError("twistd started with an unprotected admin listener")
    except RuntimeError as e:
        assert "--admin = tcp:" in str(e) and "is not on the loopback interface" in str(e)
    finally:
        proc.stop()
