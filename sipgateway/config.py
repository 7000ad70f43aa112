"""Configuration: an ini file plus the command line, validated into one ``Config``.

Every bad value is an error that names the key (or option), the value and the fix.
"""

from __future__ import annotations

import codecs
import configparser
import os
from dataclasses import dataclass, field, replace

from twisted.python import usage

from sipgateway.acs.backends import split_url
from sipgateway.audit import MIN_KEY, PATRON_MODES
from sipgateway.exchange.status import parse_licences
from sipgateway.settings import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOGIN_TIMEOUT,
    DEFAULT_MAX_LINE,
    TERMINATORS,
    AccountSettings,
    ErrorDetection,
    ListenerSettings,
)
from sipgateway.transports.backlog import BACKLOG_ENDPOINTS, MAX_BACKLOG, endpoint_type
from sipgateway.transports.doors import DOORS
from sipgateway.transports.endpointstrings import split_endpoint

DEFAULT_DATABASE = "sqlite:sipgateway.sqlite3"
DEFAULT_LISTENERS = ("sip:tcp:6001:interface=127.0.0.1", "telnet:tcp:6002:interface=127.0.0.1")
#: keys of ours that may appear in an endpoint string; the rest goes to Twisted
LISTENER_KEYS = ("account", "encoding", "checksum", "idle_timeout", "login_timeout", "max_line", "terminator",
                 "backlog")
DEFAULT_MAX_CONNECTIONS = 20000
DEFAULT_MAX_PER_ADDRESS = 1000


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what to do."""


@dataclass(frozen=True)
class ListenerConfig:
    kind: str          # a door: a key of transports.doors.DOORS
    endpoint: str      # Twisted server endpoint string, our keys removed
    settings: ListenerSettings
    #: listen queue length; None: the system's (see transports.backlog)
    backlog: int | None = None


@dataclass(frozen=True)
class AccountConfig:
    name: str
    password: str = field(repr=False)
    institution: str
    encoding: str = "utf-8"
    error_detection: ErrorDetection = ErrorDetection.AUTO
    library_name: str = ""
    terminal_location: str = ""
    #: seconds without a request before this account's connections are closed (None: the listener's)
    idle_timeout: float | None = None
    #: what ends every reply (None: CR, or the listener's)
    terminator: bytes | None = None
    #: a checkin of an item that was not on loan answers ok=1 (yes) or ok=0 (no)
    checked_in_ok: bool = True

    @property
    def settings(self) -> AccountSettings:
        return AccountSettings(terminator=self.terminator, checked_in_ok=self.checked_in_ok)


@dataclass(frozen=True)
class Config:
    listeners: tuple[ListenerConfig, ...]
    database: str = DEFAULT_DATABASE
    demo: bool = False
    #: create the database file when it is missing (--init); otherwise a missing file stops start-up
    init: bool = False
    #: True when nothing was configured: the demo listeners and fixtures are in use
    demo_defaults: bool = False
    currency: str = "USD"
    acs_timeout: float = 30.0
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_address: int = DEFAULT_MAX_PER_ADDRESS
    max_login_failures: int = 10
    lockout_seconds: float = 3600.0
    max_login_failures_per_address: int = 30
    max_login_failures_per_account: int = 100
    max_pin_failures: int = 10
    max_pin_failures_per_terminal: int = 30
    pin_lockout_seconds: float = 3600.0
    trace: bool = False
    accounts: tuple[AccountConfig, ...] = ()
    #: how audit lines write the patron: mask, hash (keyed with audit_key) or full
    audit_patron: str = "mask"
    audit_key: str = field(default="", repr=False)
    #: OCLC Wise SIP2+ licences every 98 reports in GG
    licences: tuple[str, ...] = ()


# --- endpoint strings --------------------------------------------------------------------

def parse_listen(value: str, where: str = "--listen", defaults: dict[str, str] | None = None) -> ListenerConfig:
    """``KIND:ENDPOINT`` with our per-listener keys anywhere among the endpoint's arguments."""
    kind, sep, rest = value.partition(":")
    if not sep or kind not in DOORS or not rest:
        raise ConfigError(
            f"{where}: {value!r} is not KIND:ENDPOINT; KIND is one of {', '.join(DOORS)}, "
            f"for example sip:tcp:6001:interface=127.0.0.1")
    ours: dict[str, str] = dict(defaults or {})
    kept = []
    for part in split_endpoint(rest):
        key, eq, val = part.partition("=")
        if eq and key in LISTENER_KEYS:
            ours[key] = val
        else:
            kept.append(part)
    endpoint = ":".join(kept)
    if not endpoint:
        raise ConfigError(f"{where}: {value!r} has no endpoint after {kind}:")
    if DOORS[kind].no_account and ours.get("account"):
        raise ConfigError(f"{where}: account= cannot be used on a {kind} listener: {DOORS[kind].no_account}")
    backlog = _backlog(ours.pop("backlog", ""), endpoint, where)
    settings = listener_settings(ours, name=f"{kind}:{endpoint}", where=where, serial=kept[0] == "serial")
    return ListenerConfig(kind=kind, endpoint=endpoint, settings=settings, backlog=backlog)


def _backlog(raw: str, endpoint: str, where: str) -> int | None:
    if not raw:
        return None
    n = int(_number({"backlog": raw}, "backlog", 0, where, integer=True, minimum=1))
    if n > MAX_BACKLOG:
        raise ConfigError(f"{where}: backlog={raw!r} must be at most {MAX_BACKLOG}")
    if endpoint_type(endpoint) not in BACKLOG_ENDPOINTS:
        raise ConfigError(f"{where}: backlog= applies only to {', '.join(sorted(BACKLOG_ENDPOINTS))} endpoints, "
                          f"not {endpoint_type(endpoint)}:")
    return n


def _number(values: dict[str, str], key: str, default: float, where: str, *, integer: bool = False,
            minimum: float = 0) -> float:
    raw = values.get(key)
    if raw is None or raw == "":
        return default
    try:
        n = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where}: {key}={raw!r} is not {kind}") from None
    if n < minimum:
        raise ConfigError(f"{where}: {key}={raw!r} must be at least {minimum:g}")
    return n


_ASCII = "".join(map(chr, range(128)))


def check_encoding(value: str, where: str) -> str:
    """The codec name of a character set SIP2 can carry: ASCII-compatible (every byte below
    128 means what it means in ASCII, so "|", tags and digits are found byte by byte) and
    either UTF-8 or one byte per character (a multi-byte character of Shift-JIS, GBK or Big5
    can hold the byte of "|"; UTF-16/32 and UTF-7 are not ASCII-compatible; hex, base64,
    rot13 are not character sets)."""
    try:
        name = codecs.lookup(value).name
    except LookupError:
        raise ConfigError(f"{where}: encoding={value!r} is not a known character set "
                          "(use ascii, utf-8, cp850, latin-1 or another single-byte charset)") from None
    if not _sip2_charset(name):
        raise ConfigError(f"{where}: encoding={value!r} cannot carry SIP2: it must be UTF-8 or an ASCII-compatible "
                          "single-byte charset (ascii, utf-8, cp850, cp1252, latin-1, iso-8859-15 ...)")
    return name


def _sip2_charset(name: str) -> bool:
    try:  # str.encode refuses bytes-to-bytes codecs (hex, base64, bz2) with LookupError
        if _ASCII.encode(name) != _ASCII.encode("ascii") or _ASCII.encode("ascii").decode(name) != _ASCII:
            return False
    except (UnicodeError, LookupError):
        return False
    if name == "utf-8":
        return True
    # one byte per character: no byte leaves a single-byte decoder waiting for more
    for b in range(128, 256):
        try:
            if len(codecs.getincrementaldecoder(name)().decode(bytes([b]), final=False)) != 1:
                return False
        except UnicodeDecodeError:
            continue  # a byte this charset does not use
    return True


def check_error_detection(value: str, where: str, key: str = "checksum") -> ErrorDetection:
    try:
        return ErrorDetection(value.lower())
    except ValueError:
        raise ConfigError(f"{where}: {key}={value!r} must be auto, required or off") from None


def check_terminator(value: str, where: str) -> bytes:
    try:
        return TERMINATORS[value.strip().upper()]
    except KeyError:
        raise ConfigError(f"{where}: terminator={value!r} must be CR or CRLF") from None


def listener_settings(values: dict[str, str], *, name: str, where: str, serial: bool = False,
                      cert_accounts: dict[str, str] | None = None) -> ListenerSettings:
    # A serial line is one permanent device: never drop it for silence or a missing 93.
    idle_default = 0.0 if serial else DEFAULT_IDLE_TIMEOUT
    login_default = 0.0 if serial else DEFAULT_LOGIN_TIMEOUT
    return ListenerSettings(
        name=name,
        account=values.get("account") or None,
        encoding=check_encoding(values["encoding"], where) if values.get("encoding") else None,
        error_detection=check_error_detection(values["checksum"], where) if values.get("checksum") else None,
        idle_timeout=_number(values, "idle_timeout", idle_default, where),
        login_timeout=_number(values, "login_timeout", login_default, where),
        max_line=int(_number(values, "max_line", DEFAULT_MAX_LINE, where, integer=True, minimum=64)),
        terminator=check_terminator(values["terminator"], where) if values.get("terminator") else None,
        cert_accounts=dict(cert_accounts or {}),
    )


# --- the ini file ------------------------------------------------------------------------

_GATEWAY_KEYS = {
    "database", "demo", "currency", "acs_timeout", "max_connections", "max_connections_per_address",
    "max_login_failures", "lockout_seconds", "trace", "audit_patron", "audit_key",
    "max_login_failures_per_address", "max_login_failures_per_account", "max_pin_failures",
    "max_pin_failures_per_terminal", "pin_lockout_seconds", "licences",
}
_LISTENER_SECTION_KEYS = {"listen", *LISTENER_KEYS}
#: account keys the database does not hold: a section may give only these, for an account
#: that is already in the database
_ACCOUNT_SETTINGS_KEYS = {"idle_timeout", "terminator", "checked_in_ok"}
_ACCOUNT_KEYS = {"password", "institution", "encoding", "error_detection", "library_name", "terminal_location",
                 *_ACCOUNT_SETTINGS_KEYS}


def _bool(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "yes", "true", "on"):
        return True
    if v in ("0", "no", "false", "off"):
        return False
    raise ConfigError(f"{where}={value!r} must be yes or no")


def load(path: str | None, *, listen: list[str] | None = None, database: str | None = None,
         demo: bool = False, init: bool = False) -> Config:
    """Read ``path`` (may be None) and apply the command-line overrides."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep case (certificate subjects)
    if path is not None:
        if not os.path.exists(path):
            raise ConfigError(f"--config: file {path!r} does not exist")
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except (OSError, UnicodeDecodeError, configparser.Error) as e:
            raise ConfigError(f"--config: cannot read {path!r}: {e}") from None

    gw = dict(parser["gateway"]) if parser.has_section("gateway") else {}
    for key in gw:
        if key not in _GATEWAY_KEYS:
            raise ConfigError(f"[gateway] {key}: unknown key (known: {', '.join(sorted(_GATEWAY_KEYS))})")
    where = "[gateway]"
    listeners: list[ListenerConfig] = []
    accounts: list[AccountConfig] = []
    for section in parser.sections():
        if section == "gateway":
            continue
        kind, _, name = section.partition(":")
        values = dict(parser[section])
        if kind == "listener" and name:
            listeners.append(_listener_section(name, values))
        elif kind == "account" and name:
            accounts.append(_account_section(name, values))
        else:
            raise ConfigError(f"[{section}]: unknown section; use [gateway], [listener:NAME] or [account:NAME]")

    if listen:
        listeners = [parse_listen(v) for v in listen]
    nothing_configured = path is None and not listen
    # the quick start (and README's examples): no config and no database is the demo library
    default_demo = path is None and database is None
    if not listeners:  # a config file without listener sections keeps the loopback defaults
        listeners = [parse_listen(v, where="default listener") for v in DEFAULT_LISTENERS]

    licences, problem = parse_licences(gw.get("licences", ""))
    if problem:
        raise ConfigError(f"{where} licences={gw['licences']!r}: {problem}")
    db = database or gw.get("database") or DEFAULT_DATABASE
    try:
        split_url(db, "--database/database")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return Config(
        listeners=tuple(listeners),
        database=db,
        demo=demo or default_demo or (_bool(gw["demo"], f"{where} demo") if "demo" in gw else False),
        init=init,
        demo_defaults=nothing_configured,
        currency=_currency(gw.get("currency", "USD")),
        acs_timeout=_number(gw, "acs_timeout", 30.0, where, minimum=0.1),
        max_connections=int(_number(gw, "max_connections", DEFAULT_MAX_CONNECTIONS, where, integer=True,
                                    minimum=1)),
        max_connections_per_address=int(_number(gw, "max_connections_per_address", DEFAULT_MAX_PER_ADDRESS,
                                                where, integer=True, minimum=1)),
        max_login_failures=int(_number(gw, "max_login_failures", 10, where, integer=True)),
        lockout_seconds=_number(gw, "lockout_seconds", 3600.0, where),
        max_login_failures_per_address=int(_number(gw, "max_login_failures_per_address", 30, where, integer=True)),
        max_login_failures_per_account=int(_number(gw, "max_login_failures_per_account", 100, where, integer=True)),
        max_pin_failures=int(_number(gw, "max_pin_failures", 10, where, integer=True)),
        max_pin_failures_per_terminal=int(_number(gw, "max_pin_failures_per_terminal", 30, where, integer=True)),
        pin_lockout_seconds=_number(gw, "pin_lockout_seconds", 3600.0, where),
        trace=_bool(gw["trace"], f"{where} trace") if "trace" in gw else False,
        accounts=tuple(accounts),
        **_audit(gw),
        licences=licences,
    )


def _audit(gw: dict[str, str]) -> dict[str, str]:
    mode = gw.get("audit_patron", "mask").strip().lower()
    key = gw.get("audit_key", "")
    if mode not in PATRON_MODES:
        raise ConfigError(f"[gateway] audit_patron={mode!r} must be mask, hash or full")
    if mode == "hash" and len(key) < MIN_KEY:
        raise ConfigError(f"[gateway] audit_key: {'too short' if key else 'missing'}; audit_patron = hash needs a "
                          f"secret of at least {MIN_KEY} characters (for example the output of "
                          "'openssl rand -hex 16'); keep it, so that the same patron hashes the same after a restart")
    return {"audit_patron": mode, "audit_key": key}


def _currency(value: str) -> str:
    if len(value) != 3 or not value.isalpha() or not value.isupper():
        raise ConfigError(f"[gateway] currency={value!r} must be a 3-letter ISO 4217 code such as USD")
    return value


def _listener_section(name: str, values: dict[str, str]) -> ListenerConfig:
    where = f"[listener:{name}]"
    cert_accounts = {}
    plain = {}
    for key, value in values.items():
        if key == "cert_accounts":
            # one "SUBJECT -> ACCOUNT" per line; subjects contain '=' and ',' so they cannot be keys
            for line in value.splitlines():
                if not line.strip():
                    continue
                subject, arrow, account = line.rpartition("->")
                if not arrow or not subject.strip() or not account.strip():
                    raise ConfigError(f"{where} cert_accounts: {line.strip()!r} is not "
                                      "'CERTIFICATE SUBJECT -> SC ACCOUNT'")
                cert_accounts[subject.strip()] = account.strip()
        elif key in _LISTENER_SECTION_KEYS:
            plain[key] = value
        else:
            raise ConfigError(f"{where} {key}: unknown key (known: listen, {', '.join(LISTENER_KEYS)}, "
                              "cert_accounts)")
    if not plain.get("listen"):
        raise ConfigError(f"{where} listen: missing; for example listen = sip:tcp:6001:interface=127.0.0.1")
    listen = plain.pop("listen")
    config = parse_listen(listen, where=f"{where} listen", defaults=plain)
    settings = replace(config.settings, name=name, cert_accounts=cert_accounts)
    return replace(config, settings=settings)


def _account_section(name: str, values: dict[str, str]) -> AccountConfig:
    where = f"[account:{name}]"
    for key in values:
        if key not in _ACCOUNT_KEYS:
            raise ConfigError(f"{where} {key}: unknown key (known: {', '.join(sorted(_ACCOUNT_KEYS))})")
    idle = _number(values, "idle_timeout", -1.0, where)
    idle_timeout = None if idle < 0 else idle
    terminator = check_terminator(values["terminator"], where) if values.get("terminator") else None
    checked_in_ok = _bool(values["checked_in_ok"], f"{where} checked_in_ok") if "checked_in_ok" in values else True
    if set(values) <= _ACCOUNT_SETTINGS_KEYS:
        # settings only, for an account that already exists in the database
        return AccountConfig(name=name, password="", institution="", idle_timeout=idle_timeout,
                             terminator=terminator, checked_in_ok=checked_in_ok)
    if not values.get("password"):
        raise ConfigError(f"{where} password: missing")
    if not values.get("institution"):
        raise ConfigError(f"{where} institution: missing (the AO institution id the terminal uses)")
    return AccountConfig(
        name=name,
        password=values["password"],
        institution=values["institution"],
        idle_timeout=idle_timeout,
        terminator=terminator,
        checked_in_ok=checked_in_ok,
        encoding=check_encoding(values.get("encoding", "utf-8"), where),
        error_detection=check_error_detection(values.get("error_detection", "auto"), where, "error_detection"),
        library_name=values.get("library_name", ""),
        terminal_location=values.get("terminal_location", ""),
    )


# --- twistd options ------------------------------------------------------------------------

class Options(usage.Options):
    synopsis = "[--config FILE] [--listen KIND:ENDPOINT ...] [--database sqlite:PATH] [--init] [--demo]"
    longdesc = ("Run the sipgateway SIP2 gateway. With no --config and no --listen it serves the demo "
                "database on 127.0.0.1 ports 6001 (raw SIP2) and 6002 (telnet).")
    optParameters = [
        ["config", "c", None, "ini configuration file (see etc/sipgateway.ini)"],
        ["database", "d", None, f"database URL (default {DEFAULT_DATABASE})"],
    ]
    optFlags = [["demo", None, "seed the demo fixtures into an empty database (created if missing)"],
                ["init", None, "create the database if the file is missing (an empty library); without "
                               "--init or --demo a missing database file stops start-up"]]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self.config: Config | None = None

    def opt_listen(self, value: str) -> None:
        """KIND:ENDPOINT to listen on (repeatable), e.g. sip:tcp:6001:interface=127.0.0.1"""
        self["listen"].append(value)

    def postOptions(self) -> None:
        try:
            self.config = load(self["config"], listen=self["listen"], database=self["database"],
                               demo=self["demo"], init=self["init"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
