"""Quirk profiles: what a library system's SIP2 server does that the specification does not say.

One frozen ``Profile`` per system, chosen with ``profile=`` in an upstream URL. Sending is
per profile (terminator, checksum mode, character set, when a 99 or a 93 may be sent);
reading is lenient in every profile (CR, LF or CRLF; upper- or lowercase checksums, sums
over bytes or over characters, or none) and then ``normalise`` rewrites a decoded reply so
that the request table's ``Exchange.read`` never sees a quirk. Each field says what the
quirk is and where it comes from.

Values the URL may override: ``terminator``, ``checksum``, ``encoding``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from sipgateway.exchange import SIDE_EFFECT_CODES
from sipgateway.sip2 import Message

#: how we send the error-detection block: the specification's sum of the encoded bytes, a sum
#: of characters (each code point's low byte, as Perl servers that sum decoded text do), or none
CHECKSUM_MODES = ("bytes", "characters", "none")
TERMINATORS = {"CR": b"\r", "CRLF": b"\r\n"}

#: variable fields that hold a SIP2 date (due date, recall date, hold pickup date, expiry)
DATE_TAGS = frozenset({"AH", "CJ", "CM", "BW"})
_ISO_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d)(?::(\d\d))?)?")
#: Koha's SIP server writes a '|' inside a value as this HTML character entity
_BAR_ENTITY = "&#124;"


@dataclass(frozen=True)
class Profile:
    name: str
    #: what ends the messages we send (replies may end in CR, LF or CRLF in every profile)
    terminator: str = "CR"
    #: how we send AY/AZ: one of CHECKSUM_MODES
    checksum: str = "bytes"
    #: the character set of both directions
    encoding: str = "utf-8"
    #: check AZ on replies that carry one (a mismatch asks for the reply again with a 97)
    verify_checksum: bool = True
    #: "&#124;" inside a reply's values means "|"
    unescape_bar: bool = False
    #: dates written "YYYY-MM-DD HH:MM:SS" in date fields are rewritten as SIP2 dates
    iso_dates: bool = False
    #: a 99 may be sent on a connection that has not logged in (breaker probes in pass-through mode)
    status_before_login: bool = True
    #: a line that is not SIP2 where a reply was due is that request's (failed) reply: the
    #: connection stays in step; otherwise such a line puts it out of step and it is closed
    error_line_in_step: bool = False
    #: send the 93 again before every request on a connection
    login_every_request: bool = False
    #: seconds a pooled connection may stay idle before a 99 keeps it open (None: never)
    keepalive: float | None = None
    #: an 11 for an item already on loan to the same patron renews it, whatever the request's
    #: SC renewal policy says (so a resent checkout is not harmless)
    checkout_renews_own_loan: bool = False

    def normalise(self, msg: Message) -> Message:
        """``msg`` as the specification would have it: entities unescaped, dates rewritten.
        Returns a new Message when anything changed, else ``msg`` itself."""
        if not (self.unescape_bar or self.iso_dates):
            return msg
        changed = False
        fields: dict[str, str | list[str]] = {}
        for tag, value in msg.fields.items():
            if type(value) is list:
                new: str | list[str] = [self._value(tag, v) for v in value]
            else:
                new = self._value(tag, value)  # type: ignore[arg-type]
            changed = changed or new != value
            fields[tag] = new
        return Message(msg.code, dict(msg.fixed), fields) if changed else msg

    def _value(self, tag: str, value: str) -> str:
        if self.unescape_bar and _BAR_ENTITY in value:
            value = value.replace(_BAR_ENTITY, "|")
        if self.iso_dates and tag in DATE_TAGS:
            value = sip_date_from_iso(value)
        return value

    def resend_safe(self, code: str, fixed: Mapping[str, str]) -> bool:
        """Whether sending this request again after an unknown outcome cannot apply it twice.

        Requests without side effects are always safe. A checkout whose SC renewal policy is
        N is safe on a server that follows the specification: if the first one was applied,
        the second is refused ("already checked out to this patron") and that refusal tells
        what happened. It is not safe where the server renews instead (Alma), nor when the
        request itself allows renewal. Every other write is not safe."""
        if code not in SIDE_EFFECT_CODES:
            return True
        if code == "11":
            return not self.checkout_renews_own_loan and fixed.get("sc_renewal_policy", "N") != "Y"
        return False


def sip_date_from_iso(value: str) -> str:
    """``YYYY-MM-DD[ HH:MM[:SS]]`` (or with a ``T``) as ``YYYYMMDD    HHMMSS`` (local time);
    a date without a time means the end of that day. Anything else is returned unchanged."""
    mo = _ISO_DATE.fullmatch(value.strip())
    if mo is None:
        return value
    year, month, day, hour, minute, second = mo.groups()
    if hour is None:
        hour, minute, second = "23", "59", "59"
    return f"{year}{month}{day}    {hour}{minute}{second or '00'}"


GENERIC = Profile("generic")

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (
    GENERIC,
    # Koha (C4::SIP): write_msg ends every reply with CRLF unless the account says
    # terminator CR; add_field writes a '|' inside a value as "&#124;"; the raw transport
    # refuses a 99 before the login unless the service allows it; idle clients are
    # disconnected after the configured client_timeout, so pooled connections send a 99
    # after a minute of silence to stay open.
    replace(GENERIC, name="koha", terminator="CRLF", unescape_bar=True, status_before_login=False,
            keepalive=60.0),
    # Evergreen: SIPServer's raw transport ends the process (and the connection) when the
    # first message is a 99 and "allow SC status before login" is off, and after a failed
    # login, so a refused 93 shows as a close rather than a 940; the newer SIP2 backend
    # (open-ils.sip2) sends due dates as "YYYY-MM-DD HH:MM:SS" unless the setting
    # due_date_use_sip_date_format is on (it is off in the shipped settings).
    replace(GENERIC, name="evergreen", status_before_login=False, iso_dates=True),
    # FOLIO edge-sip2: the default character set is IBM850 (its tenant "charset" option);
    # when a request fails inside the module it writes "Problems handling the request: ..."
    # (or the bare exception text) as the reply line, so that line is the request's failed
    # answer and the connection is still in step; the session keeps the FOLIO access token
    # of its login and fails requests once it is missing ("Access token is missing. Please
    # login to Folio"), which sorters that log in once hit, so we log in before every request.
    replace(GENERIC, name="folio", encoding="cp850", error_line_in_step=True, status_before_login=False,
            login_every_request=True),
    # Ex Libris Alma: a checkout of an item already on loan to the same patron is performed as
    # a renewal (the 12 says ok, renewal ok Y, with the new due date). The gateway passes that
    # reply on as it is (it is what the device asked, and SIP2's 12 can say it), and marks
    # checkouts as not safe to resend (``resend_safe``), for the offline journal.
    replace(GENERIC, name="alma", checkout_renews_own_loan=True),
    # SirsiDynix Symphony: clients report that one reply can arrive in two TCP reads (the
    # message and its terminator written separately). Nothing to set: no profile assumes
    # one read per reply; replies are framed on CR, LF or CRLF whatever the reads.
    replace(GENERIC, name="symphony"),
)})
