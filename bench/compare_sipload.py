"""Is our load generator at least as fast as the reference sipload.c?

    python bench/compare_sipload.py [--sipload PATH] [--seconds 3] [--rounds 3] [--quick]

Builds both (cc -O2) into bench/out/, starts bench/ceiling.py and runs each against it,
alternating, at 1, 10 and 100 connections (99 status, closed loop).  Ours must reach 95 %
of sipload's rate (median of the rounds).  When the reference source is absent
(../shared/tools/sipload.c next to this checkout, or --sipload), says so and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: bench is a package

from bench import loadgen_runner as lg  # noqa: E402
from bench import servers, workloads  # noqa: E402
from bench.build import OUT_DIR, BuildError, build, build_loadgen  # noqa: E402

DEFAULT_SIPLOAD = servers.REPO.parent / "shared" / "tools" / "sipload.c"
REQUIRED_SHARE = 0.95


def compare(loadgen: Path, sipload: Path, port: int, conns: int, seconds: float, rounds: int) -> dict:
    # only options sipload has, and its text output, so both do the same work
    load = lg.Load(requests=workloads.REQUESTS["99"], conns=conns, seconds=seconds, login=workloads.LOGIN,
                   codes=workloads.CEILING_EXPECTED)
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(lg.run(loadgen, port, load, as_json=False)["rate"])
        theirs.append(lg.run(sipload, port, load, as_json=False)["rate"])
    share = statistics.median(ours) / statistics.median(theirs)
    return {"conns": conns, "loadgen": statistics.median(ours), "sipload": statistics.median(theirs),
            "share": share, "pass": share >= REQUIRED_SHARE, "loadgen_runs": ours, "sipload_runs": theirs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sipload", type=Path, default=DEFAULT_SIPLOAD, help="sipload.c to compare with")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each per concurrency (default 3)")
    parser.add_argument("--quick", action="store_true", help="1-second runs, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    if not args.sipload.is_file():
        print(f"compare_sipload: skipped: {args.sipload} not found (reference material is not part of the repository)")
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
        try:
            results = [compare(loadgen, sipload, ceiling.port, conns, args.seconds, args.rounds)
                       for conns in (1, 10, 100)]
        except lg.LoadgenError as e:
            print(f"compare_sipload: {e}", file=sys.stderr)
            return 2
        finally:
            ceiling.stop()
    print(f"{'conns':>5}  {'loadgen req/s':>13}  {'sipload req/s':>13}  {'share':>6}  result")
    for r in results:
        print(f"{r['conns']:>5}  {r['loadgen']:>13,.0f}  {r['sipload']:>13,.0f}  {r['share']:>6.0%}  "
              f"{'PASS' if r['pass'] else 'FAIL'} (>= {REQUIRED_SHARE:.0%})")
    return 0 if all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
