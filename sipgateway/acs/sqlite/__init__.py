"""The embedded library system: an IACS backed by one SQLite file.

``open_sqlite_acs("sqlite:PATH", reactor, demo=...)`` at start-up and ``start()`` when the
services start; see ``backend.py`` for the API, ``dbprocess.py`` and ``worker.py`` for the
database process, ``runner.py`` for the ``Runner`` interface, ``batch.py`` for batches and
group commit, ``schema.py`` for the tables.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module; imported on first use, so that the database process, which
#: imports submodules of this package, does not load the backend (and Twisted) with them
_EXPORTS = {"SUPPORTED": "backend", "SQLiteACS": "backend", "database_path": "backend",
            "open_sqlite_acs": "backend", "ACSUnavailable": "errors", "CirculationRules": "rules",
            "INCONSISTENT_ITEMS_SQL": "schema", "SchemaError": "schema"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
