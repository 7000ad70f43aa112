"""The real twistd on PostgreSQL: ``--database postgresql://... --init --demo`` creates the
schema in an empty database and seeds the demo library; a device logs in, asks for the
status, checks an item out and in over a socket, and the loan is in PostgreSQL after."""

from __future__ import annotations

import time
from pathlib import Path

from sipgateway.acs.sqlite.schema import connect
from tests.system.process import GatewayProcess, SIPClient, children_of, free_port
from tests.system.test_circulation import DATE, check_ed, ed


def test_twistd_serves_a_circulation_from_postgresql(postgres_empty: str, tmp_path: Path) -> None:
    port = free_port()
    gateway = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                        "--database", postgres_empty, "--init", "--demo"], [port]).start()
    try:
        with SIPClient(port) as c:
            for seq, (body, expect) in enumerate([
                    ("9300CNsc1|COpass1|CPMAIN|", "941"),
                    ("9900302.00", "98YYYY"),
                    (f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|", "121"),
                    (f"09N{DATE}{DATE}APMAIN|AOMAIN|AB200001|AC|", "101")], start=1):
                reply = c.request(ed(body, seq))
                assert reply.decode().startswith(expect), reply
                check_ed(reply, seq)
    finally:
        gateway.stop()
    log = gateway.log()
    assert "Seeded the demo library into postgresql://postgres@127.0.0.1" in log, log
    conn = connect(postgres_empty)
    try:
        loan = conn.execute("SELECT p.barcode AS patron, l.account, l.returned_at FROM loans l "
                            "JOIN items i ON i.id = l.item_id JOIN patrons p ON p.id = l.patron_id "
                            "WHERE i.barcode = '200001' AND l.out_at >= '2024-01-01'").fetchall()
        assert [(r["patron"], r["account"], r["returned_at"] is not None) for r in loan] == [("100001", "sc1", True)]
        assert conn.execute("SELECT status FROM items WHERE barcode = '200001'").fetchone()[0] == "available"
    finally:
        conn.close()


def test_each_worker_has_its_own_database_process_and_connection(postgres_empty: str, tmp_path: Path) -> None:
    port = free_port()
    gateway = GatewayProcess(tmp_path, ["--workers", "2", "--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                        "--database", postgres_empty, "--init", "--demo"], [port]).start()
    conn = connect(postgres_empty)
    try:
        deadline = time.monotonic() + 30
        while True:
            workers = children_of(gateway.proc.pid)   # forked after the parent listens
            # The workers start their database processes after the parent's start-up, and each
            # worker first checks the database with a short connection of its own (its schema is
            # there) that closes at once: wait for the state that lasts, not the first two names.
            names = {r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity "
                                                "WHERE datname = current_database() AND pid != pg_backend_pid()")}
            pids = {int(name.rsplit(" ", 1)[1]) for name in names if name.startswith("sipgateway pid ")}
            grandchildren = {pid for w in workers for pid in children_of(w)}
            if (len(pids) == 2 and pids <= grandchildren) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # one connection per worker's database process, none from the parent or the workers
        assert len(pids) == 2 and all(any(pid in children_of(w) for w in workers) for pid in pids), (names, workers)
        assert len({next(w for w in workers if pid in children_of(w)) for pid in pids}) == 2, (names, workers)
        with SIPClient(port) as c:
            assert c.request(ed("9300CNsc1|COpass1|CPMAIN|", 1)).startswith(b"941")
            assert c.request(ed(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200002|AC|AD1234|", 2)).startswith(b"121")
        assert conn.execute("SELECT count(*) FROM loans l JOIN items i ON i.id = l.item_id "
                            "WHERE i.barcode = '200002' AND l.returned_at IS NULL").fetchone()[0] == 1
    finally:
        conn.close()
        gateway.stop()
