"""Measure checkout+checkin throughput of the embedded ACS through its real database process.

    python bench/acs.py [--callers 500] [--seconds 10] [--db PATH]

Each caller (a simulated self-check terminal) checks an item of its own out and back in,
over and over, calling the IACS directly on a real reactor; every call is one committed
transaction.  Prints transactions per second, batch sizes and latencies.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite.backend import SQLiteACS
from sipgateway.acs.sqlite.context import Tx
from sipgateway.acs.sqlite.credentials import hash_secret


def _load(callers: int):
    def load(tx: Tx) -> None:
        pin = hash_secret("1234", 1000)
        for n in range(callers):
            tx.run("INSERT INTO patrons (barcode, pin_hash, name, charge_limit, created_at) VALUES (?, ?, ?, ?, ?)",
                   f"P{n:06d}", pin, f"Bench patron {n}", 1000, tx.stamp)
            tx.run("INSERT INTO items (barcode, title, permanent_location, created_at) VALUES (?, ?, 'MAIN', ?)",
                   f"I{n:06d}", f"Bench title {n}", tx.stamp)
    return load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=500, help="concurrent terminals (default 500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--db", help="database file (default: a new temporary file)")
    parser.add_argument("--pin", action="store_true", help="send the patron PIN with every checkout")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    path = args.db or os.path.join(tempfile.mkdtemp(prefix="sipbench-"), "bench.sqlite3")
    acs = SQLiteACS(path, reactor)
    acs.run_sync("load", _load(args.callers))
    terminal = m.Terminal(account="bench", institution="MAIN", location="MAIN")
    latencies: list[float] = []
    failures: list[str] = []
    done = [0]
    deadline = [0.0]
    stopping = [False]
    ended = [0.0]

    def step(n: int, out: bool) -> None:
        if stopping[0]:
            return
        t0 = time.perf_counter()
        if out:
            d = acs.checkout(terminal, rq.CheckoutRequest(patron_id=f"P{n:06d}", item_id=f"I{n:06d}",
                                                         patron_pin="1234" if args.pin else None))
        else:
            d = acs.checkin(terminal, rq.CheckinRequest(item_id=f"I{n:06d}", current_location="MAIN"))

        def answered(result) -> None:
            latencies.append(time.perf_counter() - t0)
            if not result.ok:
                failures.append(str(result.messages))
            done[0] += 1
            if time.perf_counter() >= deadline[0]:
                finish()
            else:
                step(n, not out)

        d.addCallback(answered)
        d.addErrback(lambda f: (failures.append(f.getErrorMessage()), finish()))

    def finish() -> None:
        if not stopping[0]:
            stopping[0] = True
            ended[0] = time.perf_counter()
            # the answers in flight arrive before the database process stops
            acs.close().addBoth(lambda _: reactor.stop())

    def start() -> None:
        nonlocal started
        acs.start()
        started = time.perf_counter()
        deadline[0] = started + args.seconds
        for n in range(args.callers):
            step(n, True)

    started = 0.0
    reactor.callWhenRunning(start)
    reactor.run()
    elapsed = (ended[0] or time.perf_counter()) - started
    stats = acs.runner.stats
    lat = sorted(latencies)
    print(f"callers {args.callers}, {elapsed:.1f} s: {done[0]} transactions (checkout+checkin), "
          f"{done[0] / elapsed:.0f} per second, {len(failures)} refused or failed")
    if lat:
        print(f"latency ms: median {statistics.median(lat) * 1000:.1f}, "
              f"p99 {lat[int(len(lat) * 0.99)] * 1000:.1f}, max {lat[-1] * 1000:.1f}")
    print(f"batches {stats.batches}, commits {stats.commits}, jobs per batch {stats.jobs / max(stats.batches, 1):.1f}"
          f" (largest {stats.largest})")
    if failures:
        print("first failure:", failures[0])
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
