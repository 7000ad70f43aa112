"""The real twistd on PostgreSQL: ``--database postgresql://... --init --demo`` creates the
schema in an empty database and seeds the demo library; a device logs in, asks for the
status, checks an item out and in over a socket, and the loan is in PostgreSQL after."""

from __future__ import annotations

import threading
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


#: (patron, PIN, item): each device lends its own item to its own patron, over and over
DEVICES = (("100001", "1234", "200001"), ("djfiander", "6789", "200002"),
           ("miker", "6789", "660"), ("100001", "1234", "0440242746"))
ROUNDS = 100


def test_two_gateways_on_one_database_under_steady_checkouts_fail_none(postgres_empty: str, tmp_path: Path) -> None:
    """Two real gateways on one PostgreSQL database, two devices on each checking out and in
    their own items without a pause.  Why: before write batches took turns, the gateways'
    SERIALIZABLE batches cancelled each other (same index pages: the newest loans, the log)
    about once in seven batches, and about one checkout in 150 failed after all 8 retries."""
    gateways, ports = [], []
    try:
        for n in range(2):
            (tmp_path / f"gw{n}").mkdir()
            ports.append(free_port())
            gateways.append(GatewayProcess(tmp_path / f"gw{n}", [
                "--listen", f"sip:tcp:{ports[-1]}:interface=127.0.0.1", "--database", postgres_empty,
                *(("--init", "--demo") if n == 0 else ())], [ports[-1]]).start())
        before = _loans(postgres_empty)
        replies: list[bytes] = []
        errors: list[BaseException] = []

        def device(n: int) -> None:
            patron, pin, item = DEVICES[n]
            try:
                with SIPClient(ports[n % 2]) as c:
                    assert c.request(ed("9300CNsc1|COpass1|CPMAIN|", 0)).startswith(b"941")
                    for i in range(ROUNDS):
                        replies.append(c.request(ed(f"11YN{DATE}{DATE}AOMAIN|AA{patron}|AB{item}|AC|AD{pin}|",
                                                    (2 * i + 1) % 10)))
                        replies.append(c.request(ed(f"09N{DATE}{DATE}APMAIN|AOMAIN|AB{item}|AC|", (2 * i + 2) % 10)))
            except BaseException as e:   # noqa: BLE001 (reported below, with the replies)
                errors.append(e)

        threads = [threading.Thread(target=device, args=(n,)) for n in range(len(DEVICES))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        failed = [r for r in replies if not r.startswith((b"121", b"101"))]
        assert len(replies) == 2 * ROUNDS * len(DEVICES) and failed == [], failed[:3]
    finally:
        for gateway in gateways:
            gateway.stop()
    # one loan per checkout, each returned by its checkin
    assert _loans(postgres_empty) == (before[0] + ROUNDS * len(DEVICES), before[1])


def _loans(url: str) -> tuple[int, int]:
    """(loans, open loans) in the database."""
    conn = connect(url)
    try:
        return tuple(conn.execute("SELECT count(*), count(*) FILTER (WHERE returned_at IS NULL) FROM loans").fetchone())
    finally:
        conn.close()
