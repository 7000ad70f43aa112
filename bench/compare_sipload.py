"""Is our load generator at least as fast as the reference sipload.c?

    python bench/compare_sipload.py --sipload PATH/sipload.c [--seconds 2] [--rounds 5] [--quick]

Builds both (cc -O2) into bench/out/, starts bench/ceiling.py and runs each against it,
alternating, at 1, 10 and 100 connections (99 status, closed loop).  Ours must reach 95 %
of sipload's rate (median of the rounds).  sipload is a third-party C load generator, not
part of this repository: give its source with --sipload (a missing file is said and exits 0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bench is a package

from bench import loadgen_runner as lg  # noqa: E402
from bench import servers, workloads  # noqa: E402
from bench.build import OUT_DIR, BuildError, build, build_loadgen  # noqa: E402

REQUIRED_SHARE = 0.95


def compare(loadgen: Path, sipload: Path, port: int, conns: int, seconds: float, rounds: int,
            cpus: set[int] | None) -> dict:
    # only options sipload has, and its text output, so both do the same work
    load = lg.Load(requests=workloads.REQUESTS["99"], conns=conns, seconds=seconds, login=workloads.LOGIN,
                   codes=workloads.CEILING_EXPECTED)
    ours, theirs = [], []
    for _ in range(rounds):  # alternating, so a burst of other work hits both
        ours.append(lg.run(loadgen, port, load, as_json=False, cpus=cpus))
        theirs.append(lg.run(sipload, port, load, as_json=False, cpus=cpus))

    def rate(runs: list[dict]) -> float:
        return statistics.median(r["rate"] for r in runs)

    def cpu_us(runs: list[dict]) -> float:
        # CPU the load generator itself spent per reply: its efficiency, much less noisy than the rate
        return statistics.median(r["client_cpu_s"] * 1e6 / max(r["replies"], 1) for r in runs)

    share = rate(ours) / rate(theirs)
    return {"conns": conns, "loadgen": rate(ours), "sipload": rate(theirs), "share": share,
            "loadgen_cpu_us": cpu_us(ours), "sipload_cpu_us": cpu_us(theirs), "pass": share >= REQUIRED_SHARE,
            "loadgen_runs": [r["rate"] for r in ours], "sipload_runs": [r["rate"] for r in theirs]}


def _pin(server_pid: int) -> set[int] | None:
    """Put the server on the last allowed CPU; return the others for the load generators."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:
            return None
        os.sched_setaffinity(server_pid, {allowed[-1]})
    except OSError:
        return None
    return set(allowed[:-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sipload", type=Path, required=True, help="sipload.c to compare with")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each run (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each per concurrency (default 5)")
    parser.add_argument("--quick", action="store_true", help="1-second runs, one round")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds must be positive and --rounds at least 1")
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    if not args.sipload.is_file():
        print(f"compare_sipload: skipped: {args.sipload} not found (sipload is not part of the repository)")
        return 0
    try:
        loadgen = build_loadgen()
        sipload = build(args.sipload, OUT_DIR / "sipload")
    except BuildError as e:
        print(f"compare_sipload: {e}", file=sys.stderr)
        return 2
    servers.raise_nofile_limit()
    with tempfile.TemporaryDirectory(prefix="sipbench-") as tmp:
        try:
            ceiling = servers.start_ceiling(Path(tmp))
        except servers.ServerError as e:
            print(f"compare_sipload: {e}", file=sys.stderr)
            return 2
        # Client and server each on a CPU of their own: left to the scheduler, one connection's
        # round trip is 2-3x faster whenever both land on the same CPU, which swamps the comparison.
        cpus = _pin(ceiling.pid)
        try:
            results = [compare(loadgen, sipload, ceiling.port, conns, args.seconds, args.rounds, cpus)
                       for conns in (1, 10, 100)]
        except lg.LoadgenError as e:
            print(f"compare_sipload: {e}", file=sys.stderr)
            return 2
        finally:
            ceiling.stop()
    print(f"{'conns':>5}  {'loadgen req/s':>13}  {'sipload req/s':>13}  {'share':>6}  "
          f"{'loadgen cpu us/req':>18}  {'sipload cpu us/req':>18}  result")
    for r in results:
        print(f"{r['conns']:>5}  {r['loadgen']:>13,.0f}  {r['sipload']:>13,.0f}  {r['share']:>6.0%}  "
              f"{r['loadgen_cpu_us']:>18.2f}  {r['sipload_cpu_us']:>18.2f}  "
              f"{'PASS' if r['pass'] else 'FAIL'} (>= {REQUIRED_SHARE:.0%})")
    return 0 if all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
