"""Start-up checks of a PostgreSQL ``--database``: reachable, and holding sipgateway's
schema unless asked to create it (``--init``, ``--demo``): an empty database, or the wrong
one, must not silently become a new, empty library."""

from __future__ import annotations

import sqlite3

from sipgateway.acs.postgresql.schema import has_schema
from sipgateway.acs.postgresql.target import describe
from sipgateway.acs.sqlite.errors import ACSUnavailable


class EmptyDatabase(ACSUnavailable):
    """The database has no sipgateway schema and creating it was not asked for."""


def check_postgresql(url: str, create: bool) -> None:
    from sipgateway.acs.sqlite.schema import connect

    where = describe(url)
    try:
        conn = connect(url)
    except ImportError as e:  # psycopg, or the libpq it uses, is missing
        raise ACSUnavailable(f"--database postgresql://{where}: cannot load the PostgreSQL driver psycopg ({e}); "
                             "install it with pip and libpq5 with apt-get") from None
    except sqlite3.Error as e:
        raise ACSUnavailable(f"--database postgresql://{where}: {e}") from None
    try:
        if not create and not has_schema(conn):
            raise EmptyDatabase(f"--database postgresql://{where}: the database has no sipgateway tables; start "
                                "once with --init to create them (an empty library), or with --demo for the demo "
                                "library")
    except sqlite3.Error as e:
        raise ACSUnavailable(f"--database postgresql://{where}: {e}") from None
    finally:
        conn.close()
