"""The log as JSON: one object per line, for log shippers (journald, Loki, Elasticsearch)::

    twistd -n --logger sipgateway.logjson.observer sipgateway --config /etc/sipgateway.ini

twistd's ``--logger`` names a factory of the log observer it then uses instead of its text
log (``--logfile`` and ``--syslog`` no longer apply); this one writes to twistd's standard
output, which ``-n`` keeps (under systemd: the journal).  Each object has ``time`` (ISO 8601
with the UTC offset), ``level``, ``namespace`` and ``text`` (the line the text log would
have), and when the line is about a connection ``listener``, ``peer`` and ``account``; an
audit line also has ``code``, ``outcome``, ``location``, ``patron`` (masked, hashed or
full as ``[gateway] audit_patron`` says, like the text) and ``item``; a failure adds
``traceback``.  Nothing else of the event is written: the text is the one the text log has,
in which passwords and PINs never appear and patrons are masked by default.

The audit lines of one reactor turn are one event (audit.py); here they become one object
each.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import IO, Any

from twisted.logger import ILogObserver, formatEvent
from zope.interface import implementer

from sipgateway.audit import RECORD_KEYS
from sipgateway.sessioninfo import connection_of

#: keys copied from an event that carries them itself (gateway.authenticate's login lines)
_EVENT_KEYS = ("listener", "peer", "account", "code", "outcome")


@implementer(ILogObserver)
class JSONLines:
    """Writes each log event as one JSON object per line (several for a batch of audit lines)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            text = "".join(json.dumps(line, default=str) + "\n" for line in lines(event))
        except Exception as e:  # an observer that raises is removed: say so in the log instead
            text = json.dumps({"time": _time(event), "level": "error", "namespace": __name__,
                               "text": f"a log event could not be written as JSON ({type(e).__name__})"}) + "\n"
        self.out.write(text)
        self.out.flush()


def observer() -> JSONLines:
    """twistd's ``--logger sipgateway.logjson.observer``.  twistd calls it before it
    redirects standard output into the log, so this holds the real standard output."""
    return JSONLines(sys.stdout)


def lines(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON objects of ``event``."""
    base: dict[str, Any] = {"time": _time(event), "level": _level(event),
                            "namespace": event.get("log_namespace", "")}
    records = event.get("audit_records")
    if records:
        texts = str(event.get("audit", "")).split("\n")
        return [{**base, "text": text, **{k: v for k, v in zip(RECORD_KEYS, record, strict=True) if v}}
                for text, record in zip(texts, records, strict=False)]
    line = {**base, "text": formatEvent(event)}
    line.update(connection_of(event.get("log_source")))
    for key in _EVENT_KEYS:
        value = event.get(key)
        if key not in line and isinstance(value, str):
            line[key] = value
    listener, peer = line.get("listener"), line.get("peer")
    if listener and peer and peer.startswith(listener + " "):
        line["peer"] = peer[len(listener) + 1:]  # "raw 10.0.0.9:4000" names its listener first
    failure = event.get("log_failure")
    if failure is not None:
        line["traceback"] = failure.getTraceback()
    return [line]


def _time(event: dict[str, Any]) -> str:
    stamp = event.get("log_time")
    moment = datetime.fromtimestamp(stamp) if isinstance(stamp, int | float) else datetime.now()
    return moment.astimezone().isoformat(timespec="milliseconds")


def _level(event: dict[str, Any]) -> str:
    level = event.get("log_level")
    return getattr(level, "name", "info")
