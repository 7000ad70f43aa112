"""Configuration: an ini file plus the command line, validated into one ``Config``.

Every bad value is an error that names the key (or option), the value and the fix.  Each
kind of section has its module (listeners.py, accounts.py); this one reads the file, the
``[gateway]`` section and the command line's overrides.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Collection
from dataclasses import dataclass, field

from sipgateway.acs.backends import split_url
from sipgateway.acs.upstream.url import UpstreamConfig
from sipgateway.audit import MIN_KEY, PATRON_MODES
from sipgateway.config.accounts import AccountConfig, account_section
from sipgateway.config.admin import AdminConfig, admin_section
from sipgateway.config.database import database_password
from sipgateway.config.forwarding import DEFAULT_CACHED_ANSWER_AGE, check_rules_forwarded, forwarding_keys
from sipgateway.config.listeners import DEFAULT_LISTENERS, ListenerConfig, listener_section, parse_listen
from sipgateway.config.offline import UPSTREAM_OFFLINE_KEYS, OfflineConfig, offline_config
from sipgateway.config.upstream import upstreams
from sipgateway.config.values import ConfigError, number, yes_no
from sipgateway.config.workers import parse_workers
from sipgateway.exchange.status import parse_licences

DEFAULT_DATABASE = "sqlite:sipgateway.sqlite3"
DEFAULT_MAX_CONNECTIONS = 20000
DEFAULT_MAX_PER_ADDRESS = 1000


@dataclass(frozen=True)
class Config:
    listeners: tuple[ListenerConfig, ...]
    database: str = DEFAULT_DATABASE
    #: the password of a PostgreSQL ``database`` (taken out of its URL, or read from database_password_file)
    database_password: str = field(default="", repr=False)
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
    #: worker processes serving every listener (--workers, [gateway] workers); 1: this process alone
    workers: int = 1
    #: the admin listener (health, metrics, sessions); None: off
    admin: AdminConfig | None = None
    #: the library system's SIP2 servers in failover order (--acs, [upstream]); (): embedded
    upstreams: tuple[UpstreamConfig, ...] = ()
    #: offline store-and-forward policies ([upstream] and [account:NAME] offline* keys)
    offline: OfflineConfig = OfflineConfig()
    #: seconds an answer to 17/63 may serve, marked as cached, when the library system is late
    cached_answer_age: float = DEFAULT_CACHED_ANSWER_AGE

    def __post_init__(self) -> None:
        check_rules_forwarded(self.upstreams, self.accounts)


_GATEWAY_KEYS = {
    "database", "demo", "currency", "acs_timeout", "max_connections", "max_connections_per_address",
    "max_login_failures", "lockout_seconds", "trace", "audit_patron", "audit_key",
    "max_login_failures_per_address", "max_login_failures_per_account", "max_pin_failures",
    "max_pin_failures_per_terminal", "pin_lockout_seconds", "licences",
    "workers", "database_password_file",
}


def read_ini(path: str | None) -> configparser.ConfigParser:
    """The config file's sections as read (none for no file); ConfigError names the file."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep case (certificate subjects)
    if path is not None:
        if not os.path.exists(path):
            raise ConfigError(f"--config: file {path!r} does not exist")
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except (OSError, UnicodeDecodeError, configparser.Error) as e:
            raise ConfigError(f"--config: cannot read {path!r}: {e}") from None
    return parser


def load(path: str | None, *, listen: list[str] | None = None, database: str | None = None,
         demo: bool = False, init: bool = False, admin: str | None = None, acs: list[str] | None = None,
         sections: Collection[str] | None = None, workers: str | None = None) -> Config:
    """Read ``path`` (may be None) and apply the command-line overrides.  ``sections``: read
    only these sections of the file (``sipgateway check-config`` reads each alone, to find
    the problems of every section rather than only the first)."""
    parser = read_ini(path)
    for section in parser.sections() if sections is not None else ():
        if section not in sections:
            parser.remove_section(section)

    gw = dict(parser["gateway"]) if parser.has_section("gateway") else {}
    for key in gw:
        if key not in _GATEWAY_KEYS:
            raise ConfigError(f"[gateway] {key}: unknown key (known: {', '.join(sorted(_GATEWAY_KEYS))})")
    where = "[gateway]"
    listeners: list[ListenerConfig] = []
    accounts: list[AccountConfig] = []
    for section in parser.sections():
        if section in ("gateway", "admin", "upstream"):
            continue
        kind, _, name = section.partition(":")
        values = dict(parser[section])
        if kind == "listener" and name:
            listeners.append(listener_section(name, values))
        elif kind == "account" and name:
            accounts.append(account_section(name, values))
        else:
            raise ConfigError(f"[{section}]: unknown section; use [gateway], [upstream], [listener:NAME], "
                              "[account:NAME] or [admin]")

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
        db, db_password = database_password(db, gw.get("database_password_file"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return Config(
        listeners=tuple(listeners),
        database=db,
        database_password=db_password,
        demo=demo or default_demo or (yes_no(gw["demo"], f"{where} demo") if "demo" in gw else False),
        init=init,
        demo_defaults=nothing_configured,
        currency=_currency(gw.get("currency", "USD")),
        acs_timeout=number(gw, "acs_timeout", 30.0, where, minimum=0.1),
        max_connections=int(number(gw, "max_connections", DEFAULT_MAX_CONNECTIONS, where, integer=True,
                                    minimum=1)),
        max_connections_per_address=int(number(gw, "max_connections_per_address", DEFAULT_MAX_PER_ADDRESS,
                                                where, integer=True, minimum=1)),
        max_login_failures=int(number(gw, "max_login_failures", 10, where, integer=True)),
        lockout_seconds=number(gw, "lockout_seconds", 3600.0, where),
        max_login_failures_per_address=int(number(gw, "max_login_failures_per_address", 30, where, integer=True)),
        max_login_failures_per_account=int(number(gw, "max_login_failures_per_account", 100, where, integer=True)),
        max_pin_failures=int(number(gw, "max_pin_failures", 10, where, integer=True)),
        max_pin_failures_per_terminal=int(number(gw, "max_pin_failures_per_terminal", 30, where, integer=True)),
        pin_lockout_seconds=number(gw, "pin_lockout_seconds", 3600.0, where),
        trace=yes_no(gw["trace"], f"{where} trace") if "trace" in gw else False,
        accounts=tuple(accounts),
        **_audit(gw),
        licences=licences,
        admin=admin_section(dict(parser["admin"]) if parser.has_section("admin") else {}, admin),
        upstreams=upstreams(acs, {k: v for k, v in parser["upstream"].items() if k not in UPSTREAM_OFFLINE_KEYS}
                            if parser.has_section("upstream") else None),
        offline=offline_config(parser),
        **forwarding_keys(parser),
        workers=_workers(workers, gw),
    )


def _workers(option: str | None, gw: dict[str, str]) -> int:
    if option is not None:
        return parse_workers(option, "--workers")
    return parse_workers(gw["workers"], "[gateway] workers") if "workers" in gw else 1


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
