"""The embedded library system: an IACS backed by one SQLite file.

``open_sqlite_acs("sqlite:PATH", reactor, demo=...)`` at start-up and ``start()`` when the
services start; see ``backend.py`` for the API, ``dbprocess.py`` and ``worker.py`` for the
database process, ``runner.py`` for batches and group commit, ``schema.py`` for the tables.
"""

from sipgateway.acs.sqlite.backend import SUPPORTED, SQLiteACS, database_path, open_sqlite_acs
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.rules import CirculationRules
from sipgateway.acs.sqlite.schema import INCONSISTENT_ITEMS_SQL, SchemaError

__all__ = ["ACSUnavailable", "CirculationRules", "INCONSISTENT_ITEMS_SQL", "SQLiteACS", "SUPPORTED", "SchemaError",
           "database_path", "open_sqlite_acs"]
