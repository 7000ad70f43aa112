"""Judge each benchmark row against its targets and print the one table.

A row is a dict (also what the JSON file holds):

    key, label, conns, idle, rate      what was run
    targets                            [{kind, limit, ref}] (workloads.Target as dicts)
    ours, ceiling                      loadgen figures (median of the runs), or None
    ours_runs, ceiling_runs            every run's figures
    ours_error, ceiling_error          why a side has no figures
    rss_peak_kb                        gateway VmRSS peak while the row ran (twistd + database process)
    verify                             the write path's database check (benchdata.verify)

``evaluate`` adds share, checks and result (PASS, FAIL, or ok for a row without targets).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.workloads import Target

#: figures that are not medians of the runs but sums or first values
_CATEGORICAL = {"stderr", "wrong_examples", "ok_by_prefix"}
_SUMMED = {"wrong", "errors", "failed", "closed_by_server", "login_refused", "unready", "unsolicited"}


def median_figures(runs: Sequence[dict]) -> dict:
    """One figures dict for several runs: medians of the measurements, sums of the faults
    (a wrong reply in any run must show), the other values of the first run."""
    if len(runs) == 1:
        return dict(runs[0])
    merged = dict(runs[0])
    for name, value in runs[0].items():
        if name in _CATEGORICAL or not isinstance(value, int | float):
            continue
        values = [run.get(name, 0) for run in runs]
        merged[name] = sum(values) if name in _SUMMED else statistics.median(values)
    merged["wrong_examples"] = [e for run in runs for e in run.get("wrong_examples", [])][:3]
    merged["runs"] = len(runs)
    return merged


def _faults(figures: dict) -> list[str]:
    faults = []
    for name in ("wrong", "errors", "failed", "login_refused", "unready", "not_logged_in"):
        if figures.get(name):
            faults.append(f"{name}={figures[name]}")
    if not figures.get("replies"):
        faults.append("no replies")
    return faults


def _target_value(target: Target, row: dict, rows: dict[str, dict]) -> float | None:
    ours, ceiling = row.get("ours"), row.get("ceiling")
    if ours is None:
        return None
    if target.kind == "share_min":
        return ours["rate"] / ceiling["rate"] if ceiling and ceiling.get("rate") else None
    if target.kind == "rate_min":
        return ours["rate"]
    if target.kind == "p50_max_us":
        return ours["p50_us"]
    if target.kind == "p99_max_us":
        return ours["p99_us"]
    if target.kind == "rss_max_mb":
        return row["rss_peak_kb"] / 1024 if row.get("rss_peak_kb") else None
    if target.kind == "ratio_min":
        ref = rows.get(target.ref or "", {}).get("ours")
        return ours["rate"] / ref["rate"] if ref and ref.get("rate") else None
    if target.kind == "cold_ratio_max":
        return ours["cold_s"] / ours["warm_s"] if ours.get("warm_s") else None
    if target.kind == "p99_hop_max_us":  # a paired row's own runs on the gateway alone, else the ref row's
        ref = row.get("alone") or rows.get(target.ref or "", {}).get("ours")
        return ours["p99_us"] - ref["p99_us"] if ref else None
    if target.kind == "ref_share_min":
        ref = rows.get(target.ref or "", {}).get("ours")
        return ours["rate"] / ref["rate"] if ref and ref.get("rate") else None
    raise ValueError(f"unknown target kind {target.kind!r}")


def _passes(target: Target, value: float) -> bool:
    return value <= target.limit if target.kind.endswith(("_max_us", "_max", "_max_mb")) else value >= target.limit


def evaluate(rows: Sequence[dict]) -> list[dict]:
    """Add share, checks and result to every row (in place) and return the rows."""
    by_key = {row["key"]: row for row in rows}
    for row in rows:
        ours, ceiling = row.get("ours"), row.get("ceiling")
        row["share"] = ours["rate"] / ceiling["rate"] if ours and ceiling and ceiling.get("rate") else None
        checks = []
        if ours is None:
            checks.append({"check": "gateway run", "pass": False, "detail": row.get("ours_error") or "not run"})
        else:
            faults = _faults(ours)
            checks.append({"check": "replies right", "pass": not faults, "detail": ", ".join(faults)})
        # a front row's ceiling is bench/relay.py, run unless the row writes (run.py: _ceiling_for)
        if ceiling is None and not row.get("storm") and (not row.get("front") or row.get("relayed")):
            checks.append({"check": "ceiling run", "pass": False, "detail": row.get("ceiling_error") or "not run"})
        if row.get("verify") is not None:
            v = row["verify"]
            checks.append({"check": "ok'd checkouts committed", "pass": v["ok"],
                           "detail": "; ".join(v["problems"]) or f"{v['loans']} loans, {v['returned']} returned"})
        for t in row.get("targets", ()):
            target = Target(**t)
            value = _target_value(target, row, by_key)
            checks.append({"check": target.describe(), "value": value,
                           "pass": value is not None and _passes(target, value),
                           "detail": f"got {target.show(value)}" if value is not None else "no figure to judge"})
        row["checks"] = checks
        if not all(c["pass"] for c in checks):
            row["result"] = "FAIL"
        else:
            row["result"] = "PASS" if row.get("targets") else "ok"
    return list(rows)


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ms(figures: dict | None, name: str) -> str:
    return "-" if figures is None or name not in figures else f"{figures[name] / 1000:.3f}"


COLUMNS = ("workload", "conns", "ours req/s", "ceiling req/s", "share", "ours p50 ms", "ours p99 ms",
           "ceil p50 ms", "ceil p99 ms", "RSS MB", "wrong", "target", "result")


def table_rows(rows: Iterable[dict]) -> list[tuple[str, ...]]:
    out = []
    for row in rows:
        ours, ceiling = row.get("ours"), row.get("ceiling")
        targets = " ".join(Target(**t).describe() for t in row.get("targets", ())) or "-"
        out.append((
            row["label"], str(row["conns"]),
            _num(ours and ours["rate"]), _num(ceiling and ceiling["rate"]),
            _num(row.get("share"), "{:.0%}"),
            _ms(ours, "p50_us"), _ms(ours, "p99_us"), _ms(ceiling, "p50_us"), _ms(ceiling, "p99_us"),
            _num(row["rss_peak_kb"] / 1024 if row.get("rss_peak_kb") else None, "{:.0f}"),
            "-" if ours is None else str(ours.get("wrong", 0)),
            targets, row.get("result", "-"),
        ))
    return out


def format_table(rows: Sequence[dict]) -> str:
    """The table: one line per row, columns as COLUMNS; numbers right-aligned."""
    body = table_rows(rows)
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(COLUMNS)]
    left = {0, len(COLUMNS) - 2, len(COLUMNS) - 1}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(COLUMNS), rule, *(line(r) for r in body)])


def failure_notes(rows: Sequence[dict]) -> list[str]:
    """One line per failed check, and the wrong replies seen, for under the table."""
    notes = []
    for row in rows:
        for check in row.get("checks", ()):
            if not check["pass"]:
                detail = f": {check['detail']}" if check.get("detail") else ""
                notes.append(f"{row['label']} x{row['conns']}: {check['check']} failed{detail}")
        for side in ("ours", "ceiling"):
            name = "the relay" if side == "ceiling" and row.get("front") else side
            for example in (row.get(side) or {}).get("wrong_examples", ()):
                notes.append(f"{row['label']} x{row['conns']}: wrong reply from {name}: {example}")
    return notes


def storm_notes(rows: Sequence[dict]) -> list[str]:
    """Both times of each login storm row, for under the table."""
    notes = []
    for row in rows:
        ours = row.get("ours")
        if row.get("storm") and ours:
            notes.append(f"{row['label']} x{row['conns']:,}: all logged in after {ours['cold_s']:.2f} s with a cold "
                         f"cache (fresh gateway), {ours['warm_s']:.2f} s warm, in the same run "
                         f"(x{ours['cold_s'] / ours['warm_s']:.2f}; {row['result']})" if ours.get("warm_s") else
                         f"{row['label']}: no warm run")
    return notes


def scaling_notes(rows: Sequence[dict]) -> list[str]:
    """For each row on worker processes, its rate over the same row's on one process (the
    row it ran beside), for under the table."""
    by_key = {row["key"]: row for row in rows}
    notes = []
    for row in rows:
        alone = by_key.get(row.get("beside") or "")
        if row.get("workers", 1) == 1 or alone is None:
            continue
        ours, one = row.get("ours"), alone.get("ours")
        if not (ours and one and one.get("rate")):
            notes.append(f"{row['label']} x{row['conns']}: no scaling ratio (a run is missing)")
            continue
        notes.append(f"{row['label']} x{row['conns']}: {ours['rate']:,.0f} req/s against {one['rate']:,.0f} on one "
                     f"process: {ours['rate'] / one['rate']:.2f}x ({row['result']})")
    return notes


def hop_notes(rows: Sequence[dict]) -> list[str]:
    """For each paired front row, its p99 beside the gateway alone's in the runs between,
    and what a relay that parses nothing (bench/relay.py) added in the same pairs."""
    notes = []
    for row in rows:
        ours, alone, relay = row.get("ours"), row.get("alone"), row.get("ceiling")
        if not row.get("alone_runs") or not (ours and alone):
            continue
        front_runs = ", ".join(f"{r['p99_us'] / 1000:.2f}" for r in row["ours_runs"])
        alone_runs = ", ".join(f"{r['p99_us'] / 1000:.2f}" for r in row["alone_runs"])
        notes.append(f"{row['label']}: p99 {ours['p99_us'] / 1000:.3f} ms, the gateway alone "
                     f"{alone['p99_us'] / 1000:.3f} ms in the runs between (medians; runs through the front "
                     f"{front_runs} ms, alone {alone_runs} ms): the hop adds "
                     f"{(ours['p99_us'] - alone['p99_us']) / 1000:.3f} ms ({row['result']})")
        if row.get("front") and relay:
            relay_runs = ", ".join(f"{r['p99_us'] / 1000:.2f}" for r in row["ceiling_runs"])
            notes.append(f"{row['label']}: through bench/relay.py (a relay that parses nothing) in the same pairs "
                         f"p99 {relay['p99_us'] / 1000:.3f} ms (runs {relay_runs} ms): a hop that parses nothing "
                         f"adds {(relay['p99_us'] - alone['p99_us']) / 1000:.3f} ms")
    return notes


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
