"""The audit line: one info line per transaction with side effects, so that an operator can
follow checkouts, checkins, renewals, holds, payments and blocks in the log without the
database.  The patron is masked by default (``[gateway] audit_patron``)::

    raw 10.1.2.3:40022 (sc1): audit 11 ok account=sc1 location=LOBBY patron=****01 item=200001

``hash`` writes a keyed BLAKE2b of the patron identifier instead: the same patron gives the
same text for as long as ``audit_key`` stays the same (across restarts), and without the key
the text cannot be turned back into a barcode by trying every barcode.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sipgateway.logmask import printable
from sipgateway.sessioninfo import peer_address

if TYPE_CHECKING:
    from sipgateway.acs.model import Terminal
    from sipgateway.exchange import Reply
    from sipgateway.sip2 import Message

#: requests with side effects: each gets one audit line
AUDIT_CODES = frozenset({"11", "09", "29", "65", "15", "37", "01", "25", "19", "39", "Y3", "X1"})
#: how the patron identifier is written: masked (all but its last few characters), hashed, in full
PATRON_MODES = ("mask", "hash", "full")
#: the shortest audit_key accepted
MIN_KEY = 16
#: bytes of the keyed hash written (as hex): 64 bits, no collisions among a library's patrons
_HASH_BYTES = 8
#: the fields of an audit record (``Audit.flush``'s ``audit_records``), in order
RECORD_KEYS = ("listener", "peer", "account", "location", "code", "outcome", "patron", "item")
#: audit lines gathered into one log event at most (the rest go into the next)
MAX_LINES_PER_EVENT = 1000


def mask_patron(patron_id: str) -> str:
    """All but the last third of the identifier (at most 4 characters shown) as ``*``."""
    shown = min(4, len(patron_id) // 3)
    return "*" * (len(patron_id) - shown) + patron_id[len(patron_id) - shown:]


def _safe(text: object) -> str:
    """``text`` for a log line: as it is when plain printable ASCII, else escaped."""
    if type(text) is str and text.isascii() and text.isprintable() and "\\" not in text:
        return text
    return printable(str(text).encode("utf-8"))


@functools.lru_cache(maxsize=1024)
def _terminal_text(terminal: Terminal) -> str:
    return f"account={_safe(terminal.account)} location={_safe(terminal.location) or '-'}"


def outcome(reply: Reply) -> str:
    """``ok`` when the reply says it was done, else ``refused``."""
    code, fixed, fields = reply
    if code in ("24", "26"):  # block (01) and enable (25) answer with the patron's status
        done = fields.get("BL") == "Y" and fields.get("CQ") != "N"
    elif code in ("38", "40"):
        done = fixed.get("payment_accepted") == "Y"
    elif code in ("Y4", "X2"):  # OCLC Wise SIP2+: X2's status is inverted (0 = OK)
        done = fixed.get("status") == ("1" if code == "Y4" else "0")
    elif code == "20":
        done = fixed.get("item_properties_ok") == "1"
    else:
        done = fixed.get("ok") == "1"
    return "ok" if done else "refused"


class Audit:
    """Writes the audit lines.  A twistd log event costs about 100 µs (time formatting,
    a lock, an unbuffered write): as much as a checkout.  So the lines of one reactor turn
    go out as one event, one line per transaction (twistd indents the lines after the
    first with a tab; journald and syslog keep them as lines).  The event also carries each
    line's fields as a tuple of strings (``audit_records``, in the order of ``RECORD_KEYS``;
    "" for none) for the JSON log (logjson.py), which alone turns them into objects."""

    log = Logger()

    def __init__(self, reactor: IReactorTime, patron: str = "mask", key: str = "") -> None:
        if patron not in PATRON_MODES:
            raise ValueError(f"audit_patron={patron!r} must be one of {', '.join(PATRON_MODES)}")
        if patron == "hash" and len(key) < MIN_KEY:
            raise ValueError(f"audit_patron = hash needs an audit_key of at least {MIN_KEY} characters")
        self.reactor = reactor
        self.patron = patron
        self._key = key.encode("utf-8")
        self._lines: list[str] = []
        self._records: list[tuple[str, ...]] = []

    def patron_text(self, patron_id: str) -> str:
        if not patron_id:
            return "-"
        if self.patron == "mask":
            return _safe(mask_patron(patron_id))
        if self.patron == "hash":
            digest = hashlib.blake2b(patron_id.encode("utf-8"), key=self._key, digest_size=_HASH_BYTES)
            return "h:" + digest.hexdigest()
        return _safe(patron_id)

    def transaction(self, who: str, terminal: Terminal, request: Message, reply: Reply | None,
                    session: Any = None) -> None:
        """One line for ``request``; ``reply`` None means it failed (the ACS broke or did not
        answer in time) and got the generic failure reply.  The patron is the request's, or
        for a checkin the reply's (who had the item).  ``session``: where it came from (its
        listener and peer), for the line's fields."""
        fields = request.fields
        patron = self.patron_text(fields.get("AA") or (reply[2].get("AA") if reply is not None else None) or "")
        item = fields.get("AB")
        item = _safe(item) if item else "-"
        done = "failed" if reply is None else outcome(reply)
        lines = self._lines
        lines.append(f"{who}: audit {request.code} {done} {_terminal_text(terminal)} patron={patron} item={item}")
        if session is not None:
            listener, peer = session.settings.name, peer_address(session)
        else:
            listener, peer = "", who
        self._records.append((listener, peer, _safe(terminal.account), _safe(terminal.location), request.code, done,
                              "" if patron == "-" else patron, "" if item == "-" else item))
        if len(lines) == 1:
            self.reactor.callLater(0, self.flush)
        elif len(lines) >= MAX_LINES_PER_EVENT:
            self.flush()

    def flush(self) -> None:
        """Log the lines gathered so far, as one event."""
        if self._lines:
            lines, self._lines = self._lines, []
            records, self._records = self._records, []
            self.log.info("{audit}", audit="\n".join(lines), audit_records=records)
