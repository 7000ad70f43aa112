"""SC accounts: ``[account:NAME]`` sections."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipgateway.acs.upstream.rules import RuleSet
from sipgateway.config.forwarding import account_rules
from sipgateway.config.offline import OFFLINE_KEYS
from sipgateway.config.upstream import UPSTREAM_ACCOUNT_KEYS, upstream_credentials
from sipgateway.config.values import (
    ConfigError,
    check_encoding,
    check_error_detection,
    check_terminator,
    deadline_ms,
    number,
    yes_no,
)
from sipgateway.settings import AccountSettings, ErrorDetection

#: account keys the database does not hold: a section may give only these, for an account
#: that is already in the database
_ACCOUNT_SETTINGS_KEYS = {"idle_timeout", "terminator", "checked_in_ok", *UPSTREAM_ACCOUNT_KEYS,
                          "deadline", "rules"}
_ACCOUNT_SETTINGS_KEYS |= OFFLINE_KEYS  # read by config/offline.py
_ACCOUNT_KEYS = {"password", "institution", "encoding", "error_detection", "library_name", "terminal_location",
                 *_ACCOUNT_SETTINGS_KEYS}


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
    #: pass-through mode: the 93 a device bound to this account logs in upstream with
    upstream_login: str | None = None
    upstream_password: str = field(default="", repr=False)
    #: seconds this account's devices wait for a reply (``deadline``, milliseconds); None: no limit of theirs
    deadline: float | None = None
    #: forwarding mode: rewrite rules for this account's requests and the library system's replies
    rules: RuleSet | None = field(default=None, compare=False)

    @property
    def settings(self) -> AccountSettings:
        return AccountSettings(terminator=self.terminator, checked_in_ok=self.checked_in_ok,
                               upstream_login=self.upstream_login, upstream_password=self.upstream_password,
                               deadline=self.deadline)


def account_section(name: str, values: dict[str, str]) -> AccountConfig:
    where = f"[account:{name}]"
    for key in values:
        if key not in _ACCOUNT_KEYS:
            raise ConfigError(f"{where} {key}: unknown key (known: {', '.join(sorted(_ACCOUNT_KEYS))})")
    idle = number(values, "idle_timeout", -1.0, where)
    idle_timeout = None if idle < 0 else idle
    terminator = check_terminator(values["terminator"], where) if values.get("terminator") else None
    checked_in_ok = yes_no(values["checked_in_ok"], f"{where} checked_in_ok") if "checked_in_ok" in values else True
    upstream_login, upstream_password = upstream_credentials(values, where)
    extra = {"deadline": deadline_ms(values, where), "rules": account_rules(values, where)}
    if set(values) <= _ACCOUNT_SETTINGS_KEYS:
        # settings only, for an account that already exists in the database
        return AccountConfig(name=name, password="", institution="", idle_timeout=idle_timeout,
                             terminator=terminator, checked_in_ok=checked_in_ok, upstream_login=upstream_login,
                             upstream_password=upstream_password, **extra)
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
        upstream_login=upstream_login,
        upstream_password=upstream_password,
        encoding=check_encoding(values.get("encoding", "utf-8"), where),
        error_detection=check_error_detection(values.get("error_detection", "auto"), where, "error_detection"),
        library_name=values.get("library_name", ""),
        terminal_location=values.get("terminal_location", ""),
        **extra,
    )
