"""The embedded library system and the gateway's own state in PostgreSQL
(``--database postgresql://USER@HOST/DBNAME``).

The job modules of ``sipgateway.acs.sqlite`` run unchanged on a connection that speaks
sqlite3's DB-API to PostgreSQL (connection.py: placeholders, rows, errors, row ids), with
the PostgreSQL form of each migration (schema.py) and the URL and its password
(target.py).  The database process, its batches and the outcome records are the same
code; what PostgreSQL adds is that several processes and hosts share one database:
write batches run SERIALIZABLE and a batch that loses a race is run again (batch.py).
"""

from __future__ import annotations

from sipgateway.acs.postgresql.target import password_for

__all__ = ["SCHEME", "is_url", "password_for"]

SCHEME = "postgresql"


def is_url(text: str | None) -> bool:
    """``text`` names a PostgreSQL database (``postgresql://...``) rather than an SQLite file."""
    return bool(text) and text.startswith(SCHEME + "://")
