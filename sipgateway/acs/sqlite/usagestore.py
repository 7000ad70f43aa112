"""Usage figures in the database (table ``usage_figures``): the write the gateway's usage
counter sends the database process in batches (sipgateway/usagefigures.py), and the read
``sipgateway report usage`` makes (sipgateway/usagereport.py)."""

from __future__ import annotations

from collections.abc import Sequence

from sipgateway.acs.sqlite.context import Tx

#: what a figure counts requests by, in the table's order; a row is these and a count
DIMENSIONS = ("day", "institution", "listener", "account", "terminal", "code", "outcome")
Row = tuple[str, str, str, str, str, str, str, int]

# the old count named with its table: PostgreSQL refuses a bare ``requests`` there as ambiguous
_UPSERT = (f"INSERT INTO usage_figures ({', '.join(DIMENSIONS)}, requests) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
           f"ON CONFLICT ({', '.join(DIMENSIONS)}) DO UPDATE SET requests = usage_figures.requests + excluded.requests")


def add(tx: Tx, rows: Sequence[Row], keep_from: str) -> int:
    """Add ``rows``' counts to the figures, and drop the days before ``keep_from``
    (YYYY-MM-DD): the table holds a bounded number of days.  Returns the rows added."""
    tx.conn.executemany(_UPSERT, rows)
    tx.run("DELETE FROM usage_figures WHERE day < ?", keep_from)
    return len(rows)
