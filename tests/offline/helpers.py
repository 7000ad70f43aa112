"""Shared pieces of the offline tests: a journal in a fresh database file, and a fake
library system answering SIP2 messages (11, 09, 17, 63) at the level of ``send``, that
applies each transaction it is sent and can be told to "crash" around one."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from twisted.internet.defer import Deferred, fail, succeed

from sipgateway.acs.offline.journal import Journal
from sipgateway.acs.sqlite import schema
from sipgateway.acs.upstream.errors import ConnectionLost, Unavailable
from sipgateway.sip2 import Message, sip_date

T0 = datetime(2024, 5, 6, 10, 30).timestamp()


def database(test) -> str:
    """A new gateway database file (all migrations), removed after the test."""
    fd, path = tempfile.mkstemp(suffix=".sqlite3")
    os.close(fd)
    os.unlink(path)
    conn = schema.connect(path)
    schema.migrate(conn)
    conn.close()
    test.addCleanup(lambda: [os.path.exists(p) and os.unlink(p) for p in (path, path + "-wal", path + "-shm")])
    return path


def journal(test, path: str | None = None) -> Journal:
    j = Journal.open(path or database(test))
    test.addCleanup(j.close)
    return j


class FakeLibrary:
    """A library system behind ``send(code, fixed, fields, deadline)``.

    ``applied``: every transaction it applied, in order ("checkout ITEM PATRON", "checkin
    ITEM"), with what the request carried.  ``down``: nothing is sent (``Unavailable``).
    ``crash_after`` / ``crash_before``: the next 11 or 09 is applied and no answer comes back
    (the connection is lost), or is lost before it arrives.  ``hang_on``: the gateway is
    killed while that one waits for its answer."""

    def __init__(self) -> None:
        self.loans: dict[str, str] = {}
        self.known = {"it1", "it2", "it3", "it4"}
        self.blocked: set[str] = set()
        self.applied: list[str] = []
        self.requests: list[Message] = []
        self.down = False
        self.crash_after = False
        self.crash_before = False
        #: the n-th 11 or 09 (1-based) never gets an answer; applied first when ``hang_applies``
        self.hang_on: int | None = None
        self.hang_applies = True

    def send(self, code, fixed, fields, deadline) -> Deferred:
        if self.down:
            return fail(Unavailable(f"{code} not sent: every upstream is out of service", code=code))
        msg = Message(code, dict(fixed), {t: v for t, v in fields.items() if v is not None})
        self.requests.append(msg)
        if code in ("11", "09") and self.crash_before:
            self.crash_before = False
            return fail(ConnectionLost("connection lost", code=code))
        writes = sum(1 for m in self.requests if m.code in ("11", "09"))
        if code in ("11", "09") and self.hang_on == writes and not self.hang_applies:
            return Deferred()  # lost on the way; the gateway dies while waiting
        reply = self.answer(msg)
        if code in ("11", "09") and self.hang_on == writes:
            return Deferred()  # applied; the gateway dies before the answer arrives
        if code in ("11", "09") and self.crash_after:
            self.crash_after = False
            return fail(ConnectionLost("connection lost", code=code))
        return succeed(reply)

    def answer(self, msg: Message) -> Message:
        item, patron = msg.get("AB") or "", msg.get("AA") or ""
        now = sip_date(datetime.fromtimestamp(T0))
        if msg.code == "11":
            ok = item in self.known and item not in self.loans and patron not in self.blocked
            if ok:
                self.loans[item] = patron
                self.applied.append(f"checkout {item} {patron} {msg.fixed['transaction_date']} "
                                    f"{msg.fixed['nb_due_date']} {msg.fixed['no_block']}")
            screen = [] if ok else ["Patron blocked" if patron in self.blocked else "Item not available"]
            return Message("12", {"ok": "1" if ok else "0", "renewal_ok": "N", "magnetic_media": "N",
                                  "desensitize": "Y" if ok else "N", "transaction_date": now},
                           {"AO": "MAIN", "AA": patron, "AB": item, "AJ": "", "AF": screen})
        if msg.code == "09":
            ok = self.loans.pop(item, None) is not None
            if ok:
                self.applied.append(f"checkin {item} {msg.fixed['transaction_date']} {msg.fixed['no_block']}")
            return Message("10", {"ok": "1" if ok else "0", "resensitize": "Y", "magnetic_media": "N",
                                  "alert": "N" if ok else "Y", "transaction_date": now},
                           {"AO": "MAIN", "AB": item, "AQ": "MAIN", "AF": [] if ok else ["Item not checked out"]})
        if msg.code == "17":
            return Message("18", {"circulation_status": "04" if item in self.loans else "03",
                                  "security_marker": "00", "fee_type": "01", "transaction_date": now},
                           {"AB": item, "AJ": "A title"})
        if msg.code == "63":
            charged = [i for i, p in sorted(self.loans.items()) if p == patron]
            return Message("64", {"patron_status": " " * 14, "language": "000", "transaction_date": now,
                                  "hold_items_count": "0000", "overdue_items_count": "0000",
                                  "charged_items_count": f"{len(charged):04d}", "fine_items_count": "0000",
                                  "recall_items_count": "0000", "unavailable_holds_count": "0000"},
                           {"AO": "MAIN", "AA": patron, "AE": "A patron", "BL": "Y", "AU": charged})
        raise AssertionError(f"unexpected {msg.code}")
