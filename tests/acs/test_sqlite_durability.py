"""An ok answer means committed: a child process checks items out through the real
database process, prints "ok" when each Deferred fires, and is killed with SIGKILL at
once; reopening the database shows every loan it reported."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sipgateway.acs.sqlite import INCONSISTENT_ITEMS_SQL
from sipgateway.acs.sqlite.schema import connect, migrate

ROOT = Path(__file__).resolve().parents[2]
ITEMS = ["200001", "200002", "1565921879", "0440242746", "660"]
DEADLINE = 60.0


def read_lines_until(proc: subprocess.Popen, want: int) -> list[str]:
    """Lines of the child's stdout until ``want`` "ok"/"refused" lines arrived (bounded)."""
    lines: list[str] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    end = time.monotonic() + DEADLINE
    while sum(1 for line in lines if line.split()[0] in ("ok", "refused")) < want:
        left = end - time.monotonic()
        assert left > 0, f"child answered only {lines}"
        if not sel.select(timeout=left):
            continue
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"child exited early: {lines}"
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines.extend(line.decode() for line in complete)
    sel.close()
    return lines


def test_acknowledged_checkouts_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "durable.sqlite3"
    proc = subprocess.Popen([sys.executable, "-m", "tests.acs.durability_child", str(path), *ITEMS],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = read_lines_until(proc, len(ITEMS))
    finally:
        proc.send_signal(signal.SIGKILL)   # no clean shutdown, no final checkpoint
        proc.wait(timeout=DEADLINE)
    assert proc.returncode == -signal.SIGKILL
    acknowledged = {line.split()[1] for line in lines if line.startswith("ok ")}
    assert acknowledged == set(ITEMS), lines

    conn = connect(str(path))          # reopening recovers from the WAL
    migrate(conn)
    loans = {r[0] for r in conn.execute(
        "SELECT i.barcode FROM loans l JOIN items i ON i.id = l.item_id JOIN patrons p ON p.id = l.patron_id "
        "WHERE l.returned_at IS NULL AND p.barcode = '100001'")}
    assert loans == acknowledged
    assert conn.execute(INCONSISTENT_ITEMS_SQL).fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM circulation_log WHERE operation = 'checkout' AND ok = 1")\
        .fetchone()[0] == len(ITEMS)
    check.close()
