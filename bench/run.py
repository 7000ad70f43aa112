"""`make bench`: our gateway against the ceiling, workload by workload, in one table.

    python bench/run.py [--quick] [--json PATH] [--only KEY ...] [--check-loadgen] [--keep]

Builds bench/out/loadgen (cc -O2, when stale), starts bench/ceiling.py and
``twistd -n sipgateway`` (on a fresh demo database in a temporary directory, free loopback
ports), runs every workload against both (99, 63, 17 and checkout+checkin at 1, 10 and 100
connections; 99 paced at 10,000 req/s over 100 connections, median of three; 10 active
connections with and without 10,000 idle logged-in ones; 10,000 logging in at once on a
fresh gateway and again warm; 63 over the TLS socket door and over the http door's HTTPS
tunnel, driven by bench/out/tlsload; 99 at 10 and checkout+checkin at 100 connections again
against a second gateway with the admin listener on and its /metrics scraped every second),
99 and 63 on a gateway with --workers 2; 63, checkout+checkin and a paced 17 through a
front gateway forwarding to the gateway under test, beside the same load on that gateway
alone and, for the rows that only read, through bench/relay.py, a relay that parses nothing,
as their ceiling; checkout+checkin on PostgreSQL), checks every reply code and that every
ok'd checkout was committed, prints one table with PASS/FAIL against the targets and
writes the figures as JSON (default bench/out/bench-<timestamp>.json).  Exit status 1 when
a row fails.  About 13 minutes on 2 cores; --quick about 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bench is a package

from bench import benchdata, report, servers, workloads  # noqa: E402
from bench import loadgen_runner as lg  # noqa: E402
from bench.build import OUT_DIR, BuildError, build_loadgen, build_tlsload  # noqa: E402
from tests.pgserver import PostgresServer, missing_reason  # noqa: E402


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(servers.REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


class Bench:
    """Runs workloads against the two servers; keeps the offsets of the write path."""

    def __init__(self, loadgen: Path, ceiling: servers.Server | None, gateway: servers.Server | None,
                 database: Path | None, gateway_error: str | None, workdir: Path | None = None,
                 tlsload: Path | None = None,
                 admin: tuple[servers.Server | None, Path | None, str | None] = (None, None, None)) -> None:
        self.loadgen = loadgen
        self.tlsload = tlsload
        self.tlsload_error: str | None = None
        self.ceiling = ceiling
        self.gateway = gateway
        self.database = database
        self.gateway_error = gateway_error
        self.workdir = workdir
        self.next_offset = 0
        #: the gateway with the admin listener on, its database, why it is missing (the -admin rows)
        self.admin, self.admin_database, self.admin_error = admin
        #: a gateway forwarding to ``gateway`` (--acs sip2://, pass-through), for the front rows
        self.front: servers.Server | None = None
        self.front_error: str | None = None
        #: bench/relay.py in front of ``gateway``: the front rows' ceiling (a hop that parses nothing)
        self.relay: servers.Server | None = None
        self.relay_error: str | None = None
        #: gateways started with --workers N (N > 1), by N, started when a row first needs one
        self.worker_gateways: dict[int, servers.Server] = {}
        #: the PostgreSQL server, the gateway on it and its database URL (the -pg rows), started when first needed
        self.postgres: PostgresServer | None = None
        self.pg_gateway: servers.Server | None = None
        self.pg_url: str | None = None
        #: bench patrons and items each database gets (the write rows' connections, all runs)
        self.write_rows = 0

    def _load(self, w: workloads.Workload, codes: str, offset: int) -> lg.Load:
        return lg.Load(requests=workloads.REQUESTS[w.request], conns=w.conns, seconds=w.seconds,
                       login=workloads.LOGIN, idle=w.idle, codes=codes, rate=w.rate, same_start=w.writes,
                       offset=offset)

    def _postgresql_gateway(self) -> servers.Server:
        if self.pg_gateway is None:
            assert self.workdir is not None
            reason = missing_reason()
            if reason is not None:
                raise lg.LoadgenError(reason)
            workdir = self.workdir / "postgresql"
            workdir.mkdir(exist_ok=True)
            try:
                self.postgres = PostgresServer().start()
                url = self.postgres.create_database("bench")
                self.pg_gateway = servers.start_gateway(workdir, url)
                benchdata.add_rows(url, self.write_rows)
            except (servers.ServerError, RuntimeError, benchdata.BenchDataError, OSError) as e:
                raise lg.LoadgenError(f"the gateway on PostgreSQL did not start: {e}") from None
            self.pg_url = url
        return self.pg_gateway

    def _server_for(self, w: workloads.Workload) -> servers.Server | None:
        """The set-up a row measures: the front gateway (forwarding to the gateway under
        test), the gateway with the admin listener on, one with ``w.workers`` worker
        processes, or the gateway under test."""
        if w.front:
            return self.front
        if w.admin:
            return self.admin
        if w.postgresql:
            return self._postgresql_gateway()
        if w.workers == 1:
            return self.gateway
        if w.workers not in self.worker_gateways:
            assert self.workdir is not None
            workdir = self.workdir / f"workers-{w.workers}"
            workdir.mkdir(exist_ok=True)
            try:
                self.worker_gateways[w.workers] = servers.start_gateway(
                    workdir, workdir / "bench.sqlite3", extra_args=["--workers", str(w.workers)])
            except servers.ServerError as e:
                raise lg.LoadgenError(f"the gateway with {w.workers} workers did not start: {e}") from None
        return self.worker_gateways[w.workers]

    def stop_worker_gateways(self) -> None:
        for server in self.worker_gateways.values():
            server.stop()
        if self.pg_gateway is not None:
            self.pg_gateway.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def _run_ours(self, w: workloads.Workload, offset: int, row: dict) -> dict:
        server = self._server_for(w)
        assert self.gateway is not None and server is not None
        if w.front:
            self.gateway.wait_quiet()
        server.wait_quiet()
        cpu_before = server.cpu_seconds()
        load = self._load(w, workloads.EXPECTED[w.request], offset)
        with servers.RSSSampler(server) as rss, servers.Scraper(server.admin_url) as scraper:
            if w.door == "sip":
                figures = lg.run(self.loadgen, server.port, load)
            else:
                if self.tlsload is None:
                    raise lg.LoadgenError(self.tlsload_error or "no tlsload to drive the TLS doors")
                if w.door not in server.doors:
                    raise lg.LoadgenError(f"the gateway was started without its {w.door} door")
                figures = lg.run_tls(self.tlsload, server.doors[w.door], load,
                                     "wise" if w.door == "https" else "sip")
        if server.admin_url:
            row["scrapes"] = row.get("scrapes", 0) + scraper.scrapes
            if scraper.error:
                raise lg.LoadgenError(f"scraping {server.admin_url}/metrics failed: {scraper.error}")
        cpu_after = server.cpu_seconds()
        if cpu_before is not None and cpu_after is not None:
            # CPU over the whole loadgen run (set-up included): near 100 % means the gateway is the bottleneck
            figures["gateway_cpu_s"] = round(cpu_after - cpu_before, 2)
        row["rss_peak_kb"] = max(row.get("rss_peak_kb") or 0, rss.peak_kb)
        for each in ((self.gateway, server) if w.front else (server,)):
            if not each.alive():
                raise lg.LoadgenError(f"the {each.name} died (status {each.proc.returncode}); "
                                      f"see {each.log}:\n{each.log_tail()}")
        return figures

    def start_front(self) -> None:
        """The front gateway, once, for the first front row (its own demo database holds the
        accounts it knows; devices log in through it to the gateway under test)."""
        if self.front is not None or self.front_error is not None or self.gateway is None:
            return
        assert self.workdir is not None
        workdir = self.workdir / "front"
        workdir.mkdir(exist_ok=True)
        try:
            self.front = servers.start_gateway(workdir, workdir / "front.sqlite3", name="front", extra_args=[
                "--acs", f"sip2://127.0.0.1:{self.gateway.port}?timeout=30"])
        except (servers.ServerError, OSError) as e:
            self.front_error = f"the front gateway did not start: {e}"
            _progress(f"bench: {self.front_error}")
        try:
            self.relay = servers.start_relay(workdir, self.gateway.port)
        except (servers.ServerError, OSError) as e:
            self.relay_error = f"the relay did not start: {e}"
            _progress(f"bench: {self.relay_error}")

    @staticmethod
    def _timed(w: workloads.Workload, attempt: int, side: str, run: Callable[[], dict], row: dict, runs: str,
               error: str, error_prefix: str = "") -> dict | None:
        """One run of ``side`` (ours, alone, ceiling, relay): its figures kept in ``row[runs]`` and
        shown, or its failure kept in ``row[error]`` and shown (None)."""
        try:
            figures = run()
        except (lg.LoadgenError, OSError) as e:
            row[error] = f"{error_prefix}{e}"
            _progress(f"  {w.key}: {side} failed: {e}")
            return None
        row[runs].append(figures)
        wrong = "" if side == "ceiling" else f" wrong={figures['wrong']}"
        _progress(f"  {w.key} run {attempt + 1}: {side} {figures['rate']:,.0f}/s "
                  f"p99 {figures['p99_us'] / 1000:.2f} ms{wrong}")
        return figures

    def _run_alone(self, w: workloads.Workload, offset: int) -> dict:
        """A paired row's load on the gateway under test alone, right before a run through the front."""
        assert self.gateway is not None
        self.gateway.wait_quiet()
        if self.front is not None:
            self.front.wait_quiet()
        return lg.run(self.loadgen, self.gateway.port, self._load(w, workloads.EXPECTED[w.request], offset))

    def _run_ceiling(self, w: workloads.Workload, offset: int) -> dict:
        """The row's ceiling: bench/ceiling.py, or for a front row bench/relay.py in front of
        the gateway under test (its replies are the gateway's: they are checked as ours are)."""
        if w.front:
            assert self.relay is not None and self.gateway is not None
            self.gateway.wait_quiet()
            self.relay.wait_quiet()
            return lg.run(self.loadgen, self.relay.port, self._load(w, workloads.EXPECTED[w.request], offset))
        assert self.ceiling is not None
        self.ceiling.wait_quiet()
        return lg.run(self.loadgen, self.ceiling.port, self._load(w, workloads.CEILING_EXPECTED, offset))

    def _ceiling_for(self, w: workloads.Workload) -> tuple[servers.Server | None, str | None]:
        """The server a row's ceiling runs use, or None and why there is none.  A front row
        that writes has none: its relay runs would lend the same patrons and items again."""
        if not w.front:
            return self.ceiling, None
        if w.writes:
            return None, None
        return self.relay, self.relay_error

    def _storm_load(self, w: workloads.Workload) -> lg.Load:
        # every connection connects and logs in as soon as the window lets it; the timed part
        # afterwards is a formality: the figure is loadgen's set-up time
        return lg.Load(requests=workloads.REQUESTS[w.request], conns=1, idle=w.conns - 1, seconds=w.seconds,
                       login=workloads.LOGIN, codes=workloads.EXPECTED[w.request],
                       window=min(w.conns, workloads.STORM_WINDOW))

    def run_storm(self, w: workloads.Workload) -> dict:
        """A fresh gateway (nothing verified yet: a cold cache), all ``w.conns`` log in at once;
        they hang up and log in at once again (warm).  The row's figure is the ratio."""
        row: dict = {"key": w.key, "label": w.label, "request": w.request, "conns": w.conns, "idle": 0,
                     "rate": None, "seconds": w.seconds, "targets": [asdict(t) for t in w.targets],
                     "ours_runs": [], "ceiling_runs": [], "ours_error": None, "ceiling_error": None,
                     "rss_peak_kb": None, "verify": None, "storm": True, "ceiling": None}
        assert self.workdir is not None
        workdir = self.workdir / w.key
        workdir.mkdir(exist_ok=True)
        try:
            gateway = servers.start_gateway(workdir, workdir / "storm.sqlite3")
        except (servers.ServerError, OSError) as e:
            row["ours_error"], row["ours"] = f"the gateway did not start: {e}", None
            return row
        try:
            for cache in ("cold", "warm"):
                gateway.wait_quiet()
                with servers.RSSSampler(gateway) as rss:
                    figures = lg.run(self.loadgen, gateway.port, self._storm_load(w))
                row["rss_peak_kb"] = max(row["rss_peak_kb"] or 0, rss.peak_kb)
                figures["cache"] = cache
                row["ours_runs"].append(figures)
                _progress(f"  {w.key} {cache}: {figures['logged_in']:,} logged in after {figures['setup_s']:.2f} s")
                if not gateway.alive():
                    raise lg.LoadgenError(f"the gateway died; see {gateway.log}:\n{gateway.log_tail()}")
        except (lg.LoadgenError, OSError) as e:
            row["ours_error"] = str(e)
            _progress(f"  {w.key}: failed: {e}")
        finally:
            gateway.stop()
        if row["ours_error"] or len(row["ours_runs"]) != 2:
            row["ours"] = None
            return row
        cold, warm = row["ours_runs"]
        summed = {name: cold.get(name, 0) + warm.get(name, 0)
                  for name in ("wrong", "errors", "failed", "login_refused", "unready", "replies")}
        row["ours"] = {**summed, "cold_s": cold["setup_s"], "warm_s": warm["setup_s"],
                       "rate": w.conns / cold["setup_s"] if cold["setup_s"] else 0.0,
                       "not_logged_in": 2 * w.conns - cold["logged_in"] - warm["logged_in"],
                       "wrong_examples": cold.get("wrong_examples", []) + warm.get("wrong_examples", [])}
        return row

    def run(self, w: workloads.Workload) -> dict:
        if w.storm:
            return self.run_storm(w)
        row: dict = {"key": w.key, "label": w.label, "request": w.request, "conns": w.conns, "idle": w.idle,
                     "workers": w.workers, "beside": w.beside,
                     "rate": w.rate, "seconds": w.seconds, "targets": [asdict(t) for t in w.targets],
                     "ours_runs": [], "ceiling_runs": [], "ours_error": None, "ceiling_error": None,
                     "rss_peak_kb": None, "verify": None, "front": w.front, "alone_runs": [],
                     "relayed": w.front and not w.writes}
        if w.front:
            self.start_front()
            if self.front is None:
                row["ours_error"] = self.front_error or self.gateway_error
        ceiling, ceiling_error = self._ceiling_for(w)
        if ceiling is None and ceiling_error:
            row["ceiling_error"] = ceiling_error
        if self.gateway is not None and not self.gateway.alive():
            self.gateway_error = (f"the gateway exited earlier (status {self.gateway.proc.returncode}); "
                                  f"see {self.gateway.log}")
            self.gateway = None
        if self.gateway is None:
            row["ours_error"] = self.gateway_error
        if w.admin and self.admin is None:
            row["ours_error"] = self.admin_error
        if w.admin and self.admin is not None and not self.admin.alive():
            row["ours_error"] = f"the admin gateway exited earlier; see {self.admin.log}"
        verify_counts = [0, 0]
        first_offset = self.next_offset
        for attempt in range(w.repeats):
            offset = self.next_offset
            if w.writes:
                self.next_offset += w.conns
            if w.paired and self.gateway is not None and row["ours_error"] is None:
                self._timed(w, attempt, "alone", partial(self._run_alone, w, offset), row, "alone_runs", "ours_error",
                            "the run on the gateway alone failed: ")
            if self.gateway is not None and row["ours_error"] is None:
                figures = self._timed(w, attempt, "ours", partial(self._run_ours, w, offset, row), row, "ours_runs",
                                      "ours_error")
                if figures is not None and w.writes:
                    oks = figures.get("ok_by_prefix", {})
                    verify_counts[0] += oks.get("121", 0)
                    verify_counts[1] += oks.get("101", 0)
            if ceiling is not None and row["ceiling_error"] is None:
                self._timed(w, attempt, "relay" if w.front else "ceiling", partial(self._run_ceiling, w, offset),
                            row, "ceiling_runs", "ceiling_error")
        row["ours"] = report.median_figures(row["ours_runs"]) if row["ours_runs"] else None
        row["ceiling"] = report.median_figures(row["ceiling_runs"]) if row["ceiling_runs"] else None
        row["alone"] = report.median_figures(row["alone_runs"]) if row["alone_runs"] else None
        database = self.pg_url if w.postgresql else self.admin_database if w.admin else self.database
        if w.writes and row["ours_runs"] and row["ours_error"] is None and database is not None:
            try:
                row["verify"] = benchdata.verify(database, first_offset, self.next_offset - first_offset,
                                                 *verify_counts)
            except benchdata.BenchDataError as e:
                row["verify"] = {"ok": False, "problems": [str(e)], "loans": None, "returned": None}
        if row["ours_error"] and row["ours"] is not None:
            row["ours"] = None  # a row with a failed run is not judged on the runs that worked
        return row


def _start_gateway(tmp: Path, plan: list[workloads.Workload],
                   admin: bool = False) -> tuple[servers.Server | None, Path | None, str | None]:
    """The gateway under test; with ``admin`` another in ``tmp``/admin with the admin
    listener on (the write rows' patrons and items are added to each database)."""
    if admin:
        tmp = tmp / "admin"
        tmp.mkdir()
    database = tmp / "bench.sqlite3"
    try:
        gateway = servers.start_gateway(tmp, database, tls=not admin and any(w.door != "sip" for w in plan),
                                        admin=admin)
    except (servers.ServerError, OSError) as e:
        return None, None, f"the {'admin ' if admin else ''}gateway did not start: {e}"
    try:
        needed = workloads.write_connections(plan)
        if needed:
            benchdata.add_rows(database, needed)
    except benchdata.BenchDataError as e:
        gateway.stop()
        return None, None, str(e)
    return gateway, database, None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (about a minute in all)")
    parser.add_argument("--json", type=Path, help="where to write the figures (default bench/out/bench-<time>.json)")
    parser.add_argument("--only", nargs="+", metavar="KEY", help="run only these workloads (e.g. 99-c10 99-idle)")
    parser.add_argument("--check-loadgen", metavar="SIPLOAD_C", type=Path,
                        help="compare bench/out/loadgen with sipload built from this source against the ceiling, "
                             "then stop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (database, logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check_loadgen:
        from bench import compare_sipload

        return compare_sipload.main(["--sipload", str(args.check_loadgen)] + (["--quick"] if args.quick else []))
    try:
        plan = workloads.plan(workloads.QUICK if args.quick else workloads.DEFAULT,
                              set(args.only) if args.only else None)
    except ValueError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    try:
        loadgen = build_loadgen()
    except BuildError as e:
        print(f"run.py: cannot build the load generator: {e}", file=sys.stderr)
        return 2
    tlsload, tlsload_error = None, None
    if any(w.door != "sip" for w in plan):
        try:
            tlsload = build_tlsload()
        except BuildError as e:  # those rows fail, saying why; the others run
            tlsload_error = f"cannot build bench/tlsload.c (it needs OpenSSL's headers: libssl-dev): {e}"
            _progress(f"bench: {tlsload_error}")
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the servers are stopped on the way out
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    nofile = servers.raise_nofile_limit()
    started = datetime.now()
    load_before = _loadavg()
    rows: list[dict] = []
    tmpdir = tempfile.mkdtemp(prefix="sipbench-")
    tmp = Path(tmpdir)
    gateway = ceiling = None
    admin: tuple[servers.Server | None, Path | None, str | None] = (None, None, None)
    bench: Bench | None = None
    try:
        _progress(f"bench: working in {tmp}")
        try:
            ceiling = servers.start_ceiling(tmp)
            ceiling_error = None
        except (servers.ServerError, OSError) as e:
            ceiling_error = str(e)
            _progress(f"bench: {e}")
        gateway, database, gateway_error = _start_gateway(tmp, plan)
        if gateway_error:
            _progress(f"bench: {gateway_error}")
        if any(w.admin for w in plan):
            admin = _start_gateway(tmp, plan, admin=True)
            if admin[2]:
                _progress(f"bench: {admin[2]}")
        bench = Bench(loadgen, ceiling, gateway, database, gateway_error, tmp, tlsload, admin)
        bench.tlsload_error = tlsload_error
        bench.write_rows = workloads.write_connections(plan)
        for w in plan:
            _progress(f"bench: {w.key} ({w.label}, {w.conns} connections, {w.seconds:g} s"
                      f"{f' x{w.repeats}' if w.repeats > 1 else ''})")
            row = bench.run(w)
            if ceiling is None and not w.front:
                row["ceiling_error"] = ceiling_error
            rows.append(row)
        hwm = gateway.status("VmHWM") if gateway is not None else None
    except KeyboardInterrupt:
        _progress("bench: interrupted; stopping the servers")
        return 130
    finally:
        if bench is not None:
            bench.stop_worker_gateways()
        for server in (bench and bench.relay, bench and bench.front, gateway, admin[0], ceiling):
            if server is not None:
                server.stop()
        if args.keep:
            _progress(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    report.evaluate(rows)
    print(report.format_table(rows))
    notes = (report.storm_notes(rows) + report.scaling_notes(rows) + report.hop_notes(rows)
             + report.failure_notes(rows))
    for note in notes:
        print("  " + note)
    load_after = _loadavg()
    if load_before and load_before[0] > 0.5:
        print(f"  note: load average was {load_before[0]:.2f} at the start: other work shared the CPUs")
    failed = sum(row["result"] == "FAIL" for row in rows)
    print(f"{len(rows) - failed} of {len(rows)} rows pass; gateway peak RSS (VmHWM, twistd + database process) "
          f"{f'{hwm / 1024:.0f} MB' if hwm else 'unknown'}")
    path = args.json or OUT_DIR / f"bench-{started:%Y%m%d-%H%M%S}.json"
    report.write_json(path, {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now() - started).total_seconds(), 1),
        "quick": args.quick, "git_commit": _git_commit(), "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "nofile": nofile,
                    "loadavg_before": load_before, "loadavg_after": load_after},
        "gateway_vmhwm_kb": hwm, "rows": rows,
    })
    print(f"figures written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
