"""A session's settings: what its listener (a TCP port, a TLS port, a serial line) and
its account impose on it (character set, error detection, terminator, time-outs)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_MAX_LINE = 4096        # bytes; the longest real SIP2 message is well under 2 KiB
DEFAULT_IDLE_TIMEOUT = 600.0   # seconds without a request before the connection is closed
DEFAULT_LOGIN_TIMEOUT = 60.0   # seconds to log in (93 or telnet) after connecting
#: what may end every reply, by its config name; SIP2 says CR, Koha's server sends CRLF
TERMINATORS = {"CR": b"\r", "CRLF": b"\r\n"}


class ErrorDetection(str, enum.Enum):
    """Checksum policy of a session, from its listener or its account: whether replies
    carry AY/AZ and whether requests must."""

    AUTO = "auto"          # mirror each request: AY/AZ in, AY/AZ out
    REQUIRED = "required"  # a request without AY/AZ gets 96
    OFF = "off"            # never append AY/AZ


@dataclass(frozen=True)
class ListenerSettings:
    name: str = "sip"
    #: SC account this listener is bound to (serial lines: logged in from the start)
    account: str | None = None
    #: character set; None means the account's (or UTF-8 before login)
    encoding: str | None = None
    #: checksum policy; None means the account's
    error_detection: ErrorDetection | None = None
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT
    max_line: int = DEFAULT_MAX_LINE
    #: what ends every reply on this listener (TERMINATORS); None means the account's, CR before login
    terminator: bytes | None = None
    #: TLS client certificate subject -> SC account
    cert_accounts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountSettings:
    """Per-account settings of the config file that the database does not hold."""

    #: what ends every reply once the account is logged in (a listener's wins); None: CR
    terminator: bytes | None = None
    #: a checkin of an item that was not on loan answers ok=1 (True) or ok=0 with an alert
    checked_in_ok: bool = True
    #: pass-through mode: what a device bound to the account logs in upstream with (93 CN, CO)
    upstream_login: str | None = None
    upstream_password: str = field(default="", repr=False)


DEFAULT_ACCOUNT_SETTINGS = AccountSettings()
