"""bench/: the load generator against the ceiling server and a recording server, and the
report's table.  Loopback only; no assertion depends on how fast anything ran."""

from __future__ import annotations

import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench import benchdata, report, servers, workloads
from bench import loadgen_runner as lg
from bench.build import LOADGEN_SOURCE, build, compiler
from bench.ceiling import REPLY as CEILING_REPLY

LOGIN = workloads.LOGIN
STATUS = workloads.REQUESTS["99"]


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory) -> Path:
    if compiler() is None:
        pytest.skip("no C compiler")
    return build(LOADGEN_SOURCE, tmp_path_factory.mktemp("loadgen") / "loadgen")


@pytest.fixture(scope="module")
def ceiling(tmp_path_factory):
    server = servers.start_ceiling(tmp_path_factory.mktemp("ceiling"))
    yield server
    server.stop()


def test_closed_loop_against_ceiling_text_output(loadgen, ceiling):
    figures = lg.run(loadgen, ceiling.port, lg.Load(STATUS, conns=3, seconds=1.0, login=LOGIN, codes="98"),
                     as_json=False)
    assert figures["connections"] == 3
    assert figures["logged_in"] == 3
    assert figures["replies"] > 0
    assert figures["wrong"] == 0
    assert figures["errors"] == 0
    assert 0 < figures["p50_us"] <= figures["p90_us"] <= figures["p99_us"] <= figures["max_us"]


def test_json_output_counts_ok_and_wrong(loadgen, ceiling):
    right = lg.run(loadgen, ceiling.port, lg.Load(STATUS, conns=2, seconds=0.3, codes="12,98YYYY"))
    assert right["replies"] > 0
    assert right["wrong"] == 0
    assert right["ok"] == right["replies"] == right["ok_by_prefix"]["98YYYY"]
    assert right["target_rate"] == 0

    wrong = lg.run(loadgen, ceiling.port, lg.Load(STATUS, conns=1, seconds=0.3, codes="97"))
    assert wrong["wrong"] == wrong["replies"] > 0
    assert wrong["ok"] == 0
    assert wrong["wrong_examples"][0].startswith("connection 0: 98YYYYNN")
    assert "wrong reply" in wrong["stderr"]


def test_paced_mode_reports_its_target_and_keeps_to_the_schedule(loadgen, ceiling):
    load = lg.Load(STATUS, conns=4, seconds=1.0, codes="98", rate=200)
    cmd = lg.command(loadgen, ceiling.port, load, Path("-"), as_json=False)
    assert cmd[cmd.index("-r") + 1] == "200"
    figures = lg.run(loadgen, ceiling.port, load, as_json=False)
    assert figures["target"] == 200
    assert figures["wrong"] == 0
    # one request per slot, and only slots that fall inside the run: rate * seconds over all
    # connections, plus each connection's first slot
    assert 0 < figures["replies"] <= 200 * 1.0 + 4


def test_the_relay_passes_every_byte_both_ways_and_hangs_up_with_the_device(tmp_path, ceiling):
    """bench/relay.py, the front rows' ceiling, in front of the ceiling server: a device gets
    the upstream's reply byte for byte, through a connection of its own."""
    relay = servers.start_relay(tmp_path, ceiling.port)
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as device:
            device.sendall(b"9900302.00AY1AZFCA5\r")
            got = b""
            while not got.endswith(b"\r"):
                chunk = device.recv(4096)
                assert chunk, "the relay hung up before the reply"
                got += chunk
            assert got == CEILING_REPLY
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as device:
            device.sendall(b"99")  # half a line, then the device hangs up
        assert relay.alive()
    finally:
        relay.stop()


def test_the_relay_carries_a_paced_load(loadgen, tmp_path, ceiling):
    relay = servers.start_relay(tmp_path, ceiling.port)
    try:
        figures = lg.run(loadgen, relay.port, lg.Load(STATUS, conns=4, seconds=0.5, login=LOGIN, codes="98",
                                                      rate=200))
    finally:
        relay.stop()
    assert figures["logged_in"] == 4 and figures["wrong"] == 0 and figures["errors"] == 0
    assert figures["replies"] > 0


def test_a_relay_that_does_not_start_says_why(tmp_path):
    with pytest.raises(servers.ServerError, match="the relay server did not start"):
        servers._start_script("relay", servers.RELAY, ["0", "70000"], tmp_path, sys.executable, 10)


class _Recorder(socketserver.BaseRequestHandler):
    """Records each line a connection sends and answers it with an 18."""

    def handle(self) -> None:
        lines: list[str] = []
        self.server.connections.append(lines)
        pending = b""
        while data := self.request.recv(65536):
            *complete, pending = (pending + data).split(b"\r")
            for line in complete:
                lines.append(line.decode())
                self.request.sendall(b"180301012026010112000AB1|AJ|\r")


def test_connection_number_substitution(loadgen):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    server.connections = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        load = lg.Load(requests=("11NN|AAP{c}|ABI{c}|", "09N|ABI{c}|"), conns=3, seconds=0.3,
                       login="9300CNsc{c}|COpw|", codes="18", same_start=True, offset=7)
        figures = lg.run(loadgen, server.server_address[1], load)
    finally:
        server.shutdown()
        server.server_close()
    assert figures["wrong"] == 0 and figures["replies"] > 0
    seen = set()
    for lines in server.connections:
        login, first, *rest = lines
        n = login[len("9300CNsc"):login.index("|")]
        seen.add(int(n))
        assert first == f"11NN|AAP{n}|ABI{n}|"  # -s: every connection starts at the first line
        for i, line in enumerate(rest):
            assert line == (f"09N|ABI{n}|" if i % 2 == 0 else f"11NN|AAP{n}|ABI{n}|")
    assert seen == {7, 8, 9}


def test_bad_usage_is_refused(loadgen, tmp_path):
    requests = tmp_path / "r.txt"
    requests.write_text("9900302.00\n")
    for args, message in ((["-c", "2"], "-f REQUESTS is required"),
                          (["-f", str(requests), "-c", "zero"], "bad connection count"),
                          (["-f", str(tmp_path / "missing")], "cannot read"),
                          (["-f", str(requests), "-x", 'a"b'], "printable")):
        proc = subprocess.run([str(loadgen), *args], capture_output=True, text=True, timeout=10)
        assert proc.returncode == 2
        assert message in proc.stderr


def test_no_server_is_an_error(loadgen, tmp_path):
    requests = tmp_path / "r.txt"
    requests.write_text("9900302.00\n")
    proc = subprocess.run([str(loadgen), "-p", str(servers.free_port()), "-f", str(requests), "-d", "0.1"],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 1
    assert "no connection" in proc.stderr


def test_text_output_parses_sipload_lines():
    figures = lg.parse_text("connections=10 failed=0 closed_by_server=0 idle=0\n"
                            "replies=1000 wrong=0 errors=0 seconds=1.00 rate=1000/s p50_us=150 p90_us=250 "
                            "p99_us=370 max_us=2758\n")
    assert figures["rate"] == 1000 and figures["seconds"] == 1.0 and figures["p99_us"] == 370
    with pytest.raises(lg.LoadgenError, match="lacks"):
        lg.parse_text("replies=1\n")


def _figures(rate: float, p50: float = 100.0, p99: float = 400.0, wrong: int = 0, **extra) -> dict:
    return {"rate": rate, "replies": int(rate), "wrong": wrong, "errors": 0, "failed": 0, "p50_us": p50,
            "p99_us": p99, "wrong_examples": [], **extra}


def _row(key: str, conns: int, ours: dict | None, ceiling: dict | None, **extra) -> dict:
    targets = [{"kind": t.kind, "limit": t.limit, "ref": t.ref} for t in workloads.TARGETS.get(key, ())]
    w = {w.key: w for w in workloads.plan()}[key]
    return {"key": key, "label": w.label, "conns": conns, "targets": targets, "ours": ours, "ceiling": ceiling,
            **extra}


def test_table_has_the_columns_and_judges_the_targets():
    rows = report.evaluate([
        _row("99-c10", 10, _figures(30000), _figures(50000), rss_peak_kb=60 * 1024),
        _row("63-c10", 10, _figures(10000), _figures(50000)),
        _row("99-c1", 1, _figures(4000, wrong=2, wrong_examples=["connection 0: 96"]), _figures(12000)),
        _row("11+09-c100", 100, _figures(6000), _figures(50000),
             verify={"ok": True, "problems": [], "loans": 10, "returned": 9}),
        _row("99-paced", 100, _figures(10000, p50=500, p99=12000), _figures(10000)),
        _row("99-noidle", 10, _figures(20000), _figures(50000)),
        _row("99-idle", 10, _figures(17000), _figures(50000), rss_peak_kb=120 * 1024),
        _row("17-c10", 10, None, _figures(50000), ours_error="the gateway did not start"),
    ])
    lines = report.format_table(rows).splitlines()
    header = lines[0].split("  ")
    assert [h.strip() for h in header if h.strip()] == list(report.COLUMNS)
    assert set(lines[1]) == {"-", " "}
    body = {row["key"]: line for row, line in zip(rows, lines[2:], strict=True)}
    assert body["99-c10"].split()[-1] == "PASS" and "60%" in body["99-c10"] and " 60 " in body["99-c10"]
    assert body["63-c10"].split()[-1] == "FAIL" and "20%" in body["63-c10"]
    assert body["99-c1"].split()[-1] == "FAIL"                         # wrong replies fail a row without targets
    assert body["11+09-c100"].split()[-1] == "PASS"
    assert body["99-paced"].split()[-1] == "FAIL" and "12.000" in body["99-paced"]   # p99 over 10 ms
    assert body["99-noidle"].split()[-1] == "ok"
    assert body["99-idle"].split()[-1] == "PASS"                       # 17000/20000 = 85 %, 120 MB
    assert body["17-c10"].split()[-1] == "FAIL"
    notes = "\n".join(report.failure_notes(rows))
    assert "connection 0: 96" in notes and "the gateway did not start" in notes
    assert "p99<=10ms failed: got 12.000 ms" in notes and "share>=35% failed: got 20%" in notes


def test_median_figures_sums_faults_and_takes_medians():
    runs = [_figures(100, p99=900, wrong=1, wrong_examples=["a"]), _figures(300, p99=100), _figures(200, p99=500)]
    merged = report.median_figures(runs)
    assert merged["rate"] == 200 and merged["p99_us"] == 500
    assert merged["wrong"] == 1 and merged["wrong_examples"] == ["a"] and merged["runs"] == 3


def test_plan_orders_no_idle_before_idle_and_refuses_unknown_keys():
    keys = [w.key for w in workloads.plan()]
    assert len(keys) == 29 and keys.index("99-noidle") < keys.index("99-idle") and keys[-1] == "93-storm"
    assert [w.workers for w in workloads.plan(only={"99-c100", "99-c100-w2"})] == [1, 2]
    assert [w.key for w in workloads.plan(only={"99-paced"})] == ["99-paced"]
    with pytest.raises(ValueError, match="unknown workload nope"):
        workloads.plan(only={"nope"})
    # 11+09-c100-admin's 100 and 11+09-front-c10's 10 too
    # ... and 11+09-c100-pg's 100 (its own database gets as many)
    assert workloads.write_connections(workloads.plan(workloads.QUICK)) == 321
    assert workloads.write_connections(workloads.plan(workloads.DEFAULT)) == 963


def test_the_postgresql_row_runs_beside_the_sqlite_one():
    pg = [w for w in workloads.plan(only={"11+09-c100-pg"})]
    assert [w.key for w in pg] == ["11+09-c100", "11+09-c100-pg"]
    assert pg[1].postgresql and pg[1].writes and pg[1].label == "11+09 checkout+checkin on PostgreSQL"


def test_the_admin_rows_follow_their_own_and_are_held_within_10_percent_of_them():
    keys = [w.key for w in workloads.plan()]
    assert keys[keys.index("99-c10") + 1] == "99-c10-admin"
    assert keys[keys.index("11+09-c100") + 1] == "11+09-c100-admin"
    admin = {w.key: w for w in workloads.plan() if w.admin}
    assert set(admin) == {"99-c10-admin", "11+09-c100-admin"}
    assert admin["99-c10-admin"].label == "99 status, admin+metrics"
    rows = report.evaluate([
        _row("99-c10", 10, _figures(30000), _figures(50000)),
        _row("99-c10-admin", 10, _figures(26000), _figures(50000)),
        _row("11+09-c100", 100, _figures(6000), _figures(50000)),
        _row("11+09-c100-admin", 100, _figures(5500), _figures(50000)),
    ])
    by_key = {row["key"]: row for row in rows}
    assert by_key["99-c10-admin"]["result"] == "FAIL"                  # 87 %
    assert by_key["11+09-c100-admin"]["result"] == "PASS"              # 92 %
    assert ">=90% of 99-c10 failed: got 87%" in "\n".join(report.failure_notes(rows))
def test_front_rows_run_beside_the_gateway_alone_and_are_judged_against_it():
    assert [w.key for w in workloads.plan(only={"63-front-c10", "17-front-paced"})] == [
        "63-c10", "63-front-c10", "17-paced", "17-front-paced"]
    rows = report.evaluate([
        _row("63-c10", 10, _figures(10000), _figures(50000)),
        _row("63-front-c10", 10, _figures(4500), None, front=True),
        _row("17-paced", 10, _figures(2000, p50=300, p99=2500), _figures(2000)),
        _row("17-front-paced", 10, _figures(2000, p50=600, p99=3600), None, front=True),
    ])
    body = dict(zip([row["key"] for row in rows], report.format_table(rows).splitlines()[2:], strict=True))
    assert body["63-front-c10"].split()[-2:] == ["63-c10", "PASS"] and ">=40% of 63-c10" in body["63-front-c10"]
    assert body["17-front-paced"].split()[-1] == "FAIL" and "p99<=alone+1ms" in body["17-front-paced"]
    assert "p99<=alone+1ms failed: no figure to judge" in "\n".join(report.failure_notes(rows))  # no paired runs


def test_the_hop_is_judged_against_the_runs_on_the_gateway_alone_between_the_front_runs():
    """Runs through the front alternate with runs of the same load on the gateway alone;
    the medians of those pairs are compared, not the 17-paced row run a minute before."""
    hop = {w.key: w for w in workloads.plan()}["17-front-paced"]
    assert hop.paired and hop.repeats == workloads.HOP_REPEATS == 5
    front_runs = [_figures(2000, p99=p99) for p99 in (1200, 3900, 1400, 1300, 1500)]
    alone_runs = [_figures(2000, p99=p99) for p99 in (400, 500, 2600, 450, 380)]
    rows = report.evaluate([
        _row("17-paced", 10, _figures(2000, p50=300, p99=250), _figures(2000)),
        _row("17-front-paced", 10, report.median_figures(front_runs), None, front=True, ours_runs=front_runs,
             alone_runs=alone_runs, alone=report.median_figures(alone_runs)),
    ])
    assert rows[1]["result"] == "PASS"  # 1.4 ms against 0.45 alone; against the 17-paced row it would fail
    note = "\n".join(report.hop_notes(rows))
    assert ("17 item info paced 2,000/s via front: p99 1.400 ms, the gateway alone 0.450 ms in the runs between"
            in note)
    assert "runs through the front 1.20, 3.90, 1.40, 1.30, 1.50 ms, alone 0.40, 0.50, 2.60, 0.45, 0.38 ms" in note
    assert "the hop adds 0.950 ms (PASS)" in note


def test_the_relay_is_a_front_rows_ceiling_and_its_hop_is_printed_beside_ours():
    """A front row that only reads runs bench/relay.py as its ceiling, in the same pairs;
    the hop note says what a relay that parses nothing added there."""
    front_runs = [_figures(2000, p99=p99) for p99 in (1200, 3900, 1400, 1300, 1500)]
    alone_runs = [_figures(2000, p99=p99) for p99 in (400, 500, 2600, 450, 380)]
    relay_runs = [_figures(2000, p99=p99) for p99 in (1100, 2000, 1900, 1700, 900)]
    paired = dict(front=True, relayed=True, ours_runs=front_runs, alone_runs=alone_runs,
                  alone=report.median_figures(alone_runs))
    rows = report.evaluate([
        _row("17-front-paced", 10, report.median_figures(front_runs), report.median_figures(relay_runs),
             ceiling_runs=relay_runs, **paired),
        _row("11+09-front-c10", 10, _figures(900), None, front=True, relayed=False),
        _row("63-front-c10", 10, _figures(4000), None, front=True, relayed=True, ceiling_error="no relay"),
    ])
    note = "\n".join(report.hop_notes(rows))
    assert ("through bench/relay.py (a relay that parses nothing) in the same pairs p99 1.700 ms "
            "(runs 1.10, 2.00, 1.90, 1.70, 0.90 ms): a hop that parses nothing adds 1.250 ms") in note
    assert rows[0]["share"] == 1.0 and rows[0]["result"] == "PASS"
    assert rows[1]["result"] == "ok"  # a writing front row has no relay runs, and none are missing
    assert rows[2]["result"] == "FAIL"
    assert "63 patron info via front x10: ceiling run failed: no relay" in "\n".join(report.failure_notes(rows))
    assert [w.key for w in workloads.plan(only={"17-front-paced"})] == ["17-paced", "17-front-paced"]


def test_two_workers_are_judged_against_one_process_at_the_same_load():
    one = _row("99-c100", 100, _figures(10_000), _figures(20_000))
    two = [_row("99-c100-w2", 100, _figures(rate), _figures(20_000)) for rate in (12_600, 12_400)]
    rows = report.evaluate([one, *two])
    assert [row["result"] for row in rows[1:]] == ["PASS", "FAIL"]
    assert rows[2]["checks"][-1]["check"] == ">=125% of 99-c100" and rows[2]["checks"][-1]["detail"] == "got 124%"


def test_each_worker_row_runs_beside_one_process_and_its_scaling_ratio_is_printed():
    worker_rows = {"99-c10-w2", "99-c100-w2", "63-c10-w2", "63-c100-w2"}
    assert [w.key for w in workloads.plan(only=worker_rows)] == [
        "99-c10", "99-c100", "63-c10", "63-c100", "99-c10-w2", "99-c100-w2", "63-c10-w2", "63-c100-w2"]
    rows = report.evaluate([
        _row("99-c100", 100, _figures(10_000), _figures(20_000), workers=1, beside=None),
        _row("63-c10", 10, _figures(6_000), _figures(20_000), workers=1, beside=None),
        _row("99-c100-w2", 100, _figures(13_000), _figures(20_000), workers=2, beside="99-c100"),
        _row("63-c10-w2", 10, _figures(9_000), _figures(20_000), workers=2, beside="63-c10"),
        _row("63-c100-w2", 100, _figures(9_000), _figures(20_000), workers=2, beside="63-c100"),
    ])
    assert report.scaling_notes(rows) == [
        "99 status, 2 workers x100: 13,000 req/s against 10,000 on one process: 1.30x (PASS)",
        "63 patron info, 2 workers x10: 9,000 req/s against 6,000 on one process: 1.50x (ok)",
    ]
    assert report.scaling_notes([*rows, _row("63-c100", 100, None, None, workers=1, ours_error="died")])[-1] == (
        "63 patron info, 2 workers x100: no scaling ratio (a run is missing)")


def test_bench_rows_and_commit_check_on_the_real_schema(tmp_path):
    from sipgateway.acs.sqlite import schema

    path = tmp_path / "bench.sqlite3"
    conn = schema.connect(str(path))
    schema.migrate(conn)
    conn.close()
    benchdata.add_rows(path, 3)
    conn = sqlite3.connect(path, isolation_level=None)
    ids = dict(conn.execute("SELECT barcode, id FROM items WHERE barcode LIKE 'BENCHI%'").fetchall())
    patron = conn.execute("SELECT id FROM patrons WHERE barcode = 'BENCHP1'").fetchone()[0]
    for returned in ("2026-01-01 12:00:00", None):  # item 1 went out twice, came back once
        conn.execute("INSERT INTO loans (item_id, patron_id, out_at, due_at, returned_at) VALUES (?, ?, ?, ?, ?)",
                     (ids["BENCHI1"], patron, "2026-01-01 10:00:00", "2026-01-22 23:59:59", returned))
    conn.close()
    assert benchdata.count_loans(path, 1, 2) == (2, 1)
    assert benchdata.verify(path, 1, 2, ok_checkouts=2, ok_checkins=1)["ok"]
    assert benchdata.verify(path, 1, 2, ok_checkouts=1, ok_checkins=1)["ok"]     # one still in flight
    lost = benchdata.verify(path, 1, 2, ok_checkouts=3, ok_checkins=1)
    assert not lost["ok"] and "1 ok'd checkouts are not in the database" in lost["problems"]
    with pytest.raises(benchdata.BenchDataError, match="cannot add"):
        benchdata.add_rows(path, 3)  # the barcodes exist already


def test_the_gateways_memory_and_cpu_include_its_database_process() -> None:
    import sys

    parent = ("import subprocess, sys\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], "
              "stdin=subprocess.PIPE)\n"
              "print('ready', flush=True)\n"
              "sys.stdin.read()\n"
              "child.stdin.close(); child.wait()\n")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    server = servers.Server("two-processes", proc, 0)
    try:
        assert proc.stdout.readline() == b"ready\n"
        family = server.family()
        assert len(family) == 2 and family[0] == proc.pid
        each = [servers._status_kb(pid, "VmRSS") for pid in family]
        assert all(each) and server.status("VmRSS") >= each[0] + each[1] - 1024  # the two, sampled apart
        assert server.cpu_seconds() is not None
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert server.status("VmRSS") is None and server.cpu_seconds() is None  # gone: nothing to read


def _storm(cold: float, warm: float, not_logged_in: int = 0) -> dict:
    ours = {"cold_s": cold, "warm_s": warm, "rate": 10000 / cold, "replies": 20, "wrong": 0, "errors": 0,
            "failed": 0, "login_refused": 0, "unready": 0, "not_logged_in": not_logged_in, "wrong_examples": []}
    return _row("93-storm", 10000, ours, None, storm=True)


def test_the_login_storm_row_is_judged_on_cold_over_warm_and_shows_both_times():
    rows = report.evaluate([_storm(9.0, 5.0), _storm(11.0, 5.0), _storm(6.0, 5.0, not_logged_in=3)])
    assert [row["result"] for row in rows] == ["PASS", "FAIL", "FAIL"]  # 1.8x; 2.2x; 3 never logged in
    line = report.format_table(rows[:1]).splitlines()[2]
    assert line.startswith("93 login storm, cold cache") and line.split()[-2:] == ["warm", "PASS"]
    assert "cold<=2x" in line and " 1,111 " in line   # the cold rate, logins/s
    notes = report.storm_notes(rows)
    assert notes[0] == ("93 login storm, cold cache x10,000: all logged in after 9.00 s with a cold cache (fresh "
                        "gateway), 5.00 s warm, in the same run (x1.80; PASS)")
    assert "cold<=2x warm failed: got 2.20x" in "\n".join(report.failure_notes(rows))
    assert "not_logged_in=3" in "\n".join(report.failure_notes(rows))


def test_the_https_row_is_judged_against_the_tls_row_of_the_same_run():
    rows = {w.key: w for w in workloads.plan(only={"63-tls-c10", "63-https-c10"})}
    assert rows["63-tls-c10"].door == "tls" and rows["63-https-c10"].door == "https"
    assert rows["63-https-c10"].label == "63 patron info over HTTPS"
    (target,) = rows["63-https-c10"].targets
    assert (target.kind, target.limit, target.ref) == ("ratio_min", 0.50, "63-tls-c10")
    assert target.describe() == ">=50% of 63-tls-c10"
    figures = {"rate": 1000.0, "p50_us": 1, "p99_us": 2, "replies": 10}
    judged = report.evaluate([
        {"key": "63-tls-c10", "label": "tls", "conns": 10, "targets": [], "ours": figures,
         "ceiling": figures},
        {"key": "63-https-c10", "label": "https", "conns": 10, "ours": dict(figures, rate=450.0),
         "ceiling": figures, "targets": [{"kind": "ratio_min", "limit": 0.5, "ref": "63-tls-c10"}]}])
    assert judged[1]["result"] == "FAIL" and judged[1]["checks"][-1]["detail"] == "got 45%"
