"""The codec micro-benchmark runs and measures every typical message (no timing asserted)."""

from __future__ import annotations

import pytest

from bench import codec as bench
from sipgateway.sip2 import parse


def test_bench_inputs_are_valid_and_distinct_dates_are_dates() -> None:
    for code, data in bench.REQUESTS.items():
        assert parse(data).code == code
    dates = bench._dates(100)
    assert len(set(dates)) == 100
    assert [parse(f"17{d}AOMAIN|AB1|".encode()).fixed["transaction_date"] for d in dates] == dates


def test_run_gives_a_row_per_message() -> None:
    labels = [label for label, us in bench.run(number=2, repeat=1) if us > 0]
    assert len(labels) == 2 * len(bench.REQUESTS) + len(bench.REPLIES_PARSED) + len(bench.REPLIES)
    assert "parse reply 18 +AY/AZ" in labels  # what a front gateway parses
    cold = [label for label, us in bench.run(number=1, repeat=1, cold=True, cold_dates=20) if us > 0]
    assert "parse 17 +AY/AZ cold" in cold and "format 64 +AY/AZ cold" in cold and "parse reply 64 +AY/AZ cold" in cold


def test_main_prints_and_refuses_nonsense(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["-n", "1", "-r", "1"]) == 0
    assert "format 98 +AY/AZ" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["-n", "0"])
