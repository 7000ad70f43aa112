"""Export files, line by line, and ``sipgateway offline report|export`` on a database."""

from __future__ import annotations

import io
import json
from datetime import datetime

from twisted.trial.unittest import SynchronousTestCase

from sipgateway import __version__
from sipgateway.acs.offline import journal as jm
from sipgateway.acs.offline.export import evergreen_lines, koc_lines
from sipgateway.cli import build_parser
from tests.offline.helpers import database, journal

AT = datetime(2024, 5, 6, 10, 30, 15, 250000).timestamp()
DUE = datetime(2024, 5, 20, 23, 59).timestamp()


def entries() -> list[jm.Entry]:
    return [jm.Entry(1, "checkout", "pending", AT, "kiosk", "MAIN", "DESK", "21000123", "39000456", DUE),
            jm.Entry(2, "checkin", "pending", AT + 60, "kiosk", "MAIN", "DESK", "", "39000789", None)]


class FormatTests(SynchronousTestCase):
    def test_koc_header_then_one_tab_separated_line_per_transaction(self):
        self.assertEqual(koc_lines(entries()), [
            f"Version=1.0\tGenerator=sipgateway\tGeneratorVersion={__version__}",
            "2024-05-06 10:30:15 250\tissue\t21000123\t39000456",
            "2024-05-06 10:31:15 250\treturn\t39000789",
        ])

    def test_koc_keeps_a_barcode_in_its_column(self):
        odd = [jm.Entry(1, "checkin", "pending", AT, "k", "", "", "", "39\t00\n1", None)]
        self.assertEqual(koc_lines(odd)[1], "2024-05-06 10:30:15 250\treturn\t39 00 1")

    def test_evergreen_one_json_object_per_line(self):
        lines = evergreen_lines(entries())
        self.assertEqual([json.loads(line) for line in lines], [
            {"type": "checkout", "timestamp": int(AT), "barcode": "39000456", "patron_barcode": "21000123",
             "checkout_time": "2024-05-06 10:30:15", "due_date": "2024-05-20"},
            {"type": "checkin", "timestamp": int(AT) + 60, "barcode": "39000789", "backdate": "2024-05-06"},
        ])
        self.assertTrue(all("\n" not in line for line in lines))


class CommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = database(self)
        j = journal(self, self.path)
        kw = dict(account="kiosk", institution="MAIN", location="DESK", max_checkouts=10)
        self.a = j.accept("checkout", now=AT, patron_id="21000123", item_id="39000456", due_at=DUE, **kw)
        self.b = j.accept("checkin", now=AT + 60, patron_id="", item_id="39000789", due_at=None, **kw)
        self.c = j.accept("checkout", now=AT + 120, patron_id="21000999", item_id="39000111", due_at=DUE, **kw)
        j.mark_sent(self.b.id, AT)
        j.finish(self.b.id, "done", AT + 200, "101YNN20240506    103115AB39000789|")
        j.mark_sent(self.c.id, AT)
        j.finish(self.c.id, "conflict", AT + 200, "120NNN20240506    103215AFPatron blocked|")
        self.j = j

    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        args = build_parser().parse_args(["offline", *argv])
        out, err = io.StringIO(), io.StringIO()
        from sipgateway.acs.offline import cli
        return cli.run(args, out, err), out.getvalue(), err.getvalue()

    def test_report_lists_counts_then_every_entry_with_the_answer(self):
        status, out, _ = self.run_cli("report", "--database", f"sqlite:{self.path}")
        self.assertEqual(status, 0)
        lines = out.splitlines()
        self.assertEqual(lines[0], "1 pending, 0 sent, 1 done, 1 conflict")
        self.assertEqual(lines[1], "#1 pending  2024-05-06 10:30:15 checkout patron 21000123 item 39000456 due "
                                   "2024-05-20 23:59:00 via kiosk")
        self.assertEqual(lines[-2], "#3 conflict 2024-05-06 10:32:15 checkout patron 21000999 item 39000111 due "
                                    "2024-05-20 23:59:00 via kiosk")
        self.assertEqual(lines[-1], "    answer: 120NNN20240506    103215AFPatron blocked|")

    def test_report_as_json(self):
        status, out, _ = self.run_cli("report", "--json", "--database", f"sqlite:{self.path}")
        doc = json.loads(out)
        self.assertEqual(doc["counts"], {"pending": 1, "sent": 0, "done": 1, "conflict": 1})
        self.assertEqual([(e["id"], e["state"], e["item_id"]) for e in doc["entries"]],
                         [(1, "pending", "39000456"), (2, "done", "39000789"), (3, "conflict", "39000111")])
        self.assertEqual(doc["entries"][0]["accepted"], "2024-05-06 10:30:15")

    def test_export_pending_as_koc_and_conflicts_as_evergreen(self):
        status, out, _ = self.run_cli("export", "--database", f"sqlite:{self.path}", "--format", "koc")
        self.assertEqual(out.splitlines()[1:], ["2024-05-06 10:30:15 250\tissue\t21000123\t39000456"])
        status, out, _ = self.run_cli("export", "--database", f"sqlite:{self.path}", "--format", "evergreen",
                                      "--conflicts")
        self.assertEqual([json.loads(x)["barcode"] for x in out.splitlines()], ["39000111"])

    def test_export_since_and_mark_done(self):
        status, out, _ = self.run_cli("export", "--database", f"sqlite:{self.path}", "--format", "koc",
                                      "--since", "2024-05-06 10:31:00")
        self.assertEqual(out.splitlines()[1:], [])
        status, out, _ = self.run_cli("export", "--database", f"sqlite:{self.path}", "--format", "koc",
                                      "--mark-done")
        self.assertEqual(len(out.splitlines()), 2)
        self.assertEqual(self.j.counts()["pending"], 0)
        self.assertEqual(self.j.entries()[0].note, "exported as a koc file")

    def test_errors_are_clear(self):
        status, _, err = self.run_cli("report", "--database", "sqlite:/nonexistent/gw.sqlite3")
        self.assertEqual((status, err), (1, "sipgateway offline: no database at '/nonexistent/gw.sqlite3' (give "
                                            "the gateway's --database sqlite:PATH)\n"))
        status, _, err = self.run_cli("export", "--database", f"sqlite:{self.path}", "--format", "koc",
                                      "--since", "yesterday")
        self.assertEqual((status, err), (2, "sipgateway offline: --since 'yesterday': use YYYY-MM-DD or "
                                            "'YYYY-MM-DD HH:MM:SS'\n"))
