"""Listeners: ``--listen KIND:ENDPOINT`` and ``[listener:NAME]`` sections."""

from __future__ import annotations

from dataclasses import dataclass, replace

from twisted.python.reflect import namedAny

from sipgateway.config.values import (
    ConfigError,
    check_encoding,
    check_error_detection,
    check_terminator,
    deadline_ms,
    number,
)
from sipgateway.settings import DEFAULT_IDLE_TIMEOUT, DEFAULT_LOGIN_TIMEOUT, DEFAULT_MAX_LINE, ListenerSettings
from sipgateway.transports.backlog import BACKLOG_ENDPOINTS, MAX_BACKLOG, endpoint_type
from sipgateway.transports.doors import DOORS, door_keys
from sipgateway.transports.endpointstrings import split_endpoint

DEFAULT_LISTENERS = ("sip:tcp:6001:interface=127.0.0.1", "telnet:tcp:6002:interface=127.0.0.1")
#: keys of ours that may appear in an endpoint string; the rest goes to Twisted
LISTENER_KEYS = ("account", "encoding", "checksum", "idle_timeout", "login_timeout", "max_line", "terminator",
                 "backlog", "deadline")
_LISTENER_SECTION_KEYS = {"listen", *LISTENER_KEYS}


@dataclass(frozen=True)
class ListenerConfig:
    kind: str          # a door: a key of transports.doors.DOORS
    endpoint: str      # Twisted server endpoint string, our keys removed
    settings: ListenerSettings
    #: listen queue length; None: the system's (see transports.backlog)
    backlog: int | None = None


def parse_listen(value: str, where: str = "--listen", defaults: dict[str, str] | None = None) -> ListenerConfig:
    """``KIND:ENDPOINT`` with our per-listener keys anywhere among the endpoint's arguments."""
    kind, sep, rest = value.partition(":")
    if not sep or kind not in DOORS or not rest:
        raise ConfigError(
            f"{where}: {value!r} is not KIND:ENDPOINT; KIND is one of {', '.join(DOORS)}, "
            f"for example sip:tcp:6001:interface=127.0.0.1")
    door = DOORS[kind]
    ours: dict[str, str] = {**door.defaults, **(defaults or {})}
    own_keys = door_keys()
    kept = []
    for part in split_endpoint(rest):
        key, eq, val = part.partition("=")
        if eq and (key in LISTENER_KEYS or key in own_keys):
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
    if door.options or any(key in own_keys for key in ours):
        settings = replace(settings, options=_door_options(kind, ours, where))
    return ListenerConfig(kind=kind, endpoint=endpoint, settings=settings, backlog=backlog)


def _door_options(kind: str, values: dict[str, str], where: str) -> object:
    """The door's own settings from its keys; another door's key is an error."""
    door = DOORS[kind]
    for key in sorted(door_keys() - set(door.keys)):
        if key in values:
            kinds = ", ".join(name for name, other in DOORS.items() if key in other.keys)
            raise ConfigError(f"{where}: {key}= applies only to {kinds} listeners, not {kind}")
    if not door.options:
        return None
    return namedAny(door.options)({key: values[key] for key in door.keys if key in values}, where)


def _backlog(raw: str, endpoint: str, where: str) -> int | None:
    if not raw:
        return None
    n = int(number({"backlog": raw}, "backlog", 0, where, integer=True, minimum=1))
    if n > MAX_BACKLOG:
        raise ConfigError(f"{where}: backlog={raw!r} must be at most {MAX_BACKLOG}")
    if endpoint_type(endpoint) not in BACKLOG_ENDPOINTS:
        raise ConfigError(f"{where}: backlog= applies only to {', '.join(sorted(BACKLOG_ENDPOINTS))} endpoints, "
                          f"not {endpoint_type(endpoint)}:")
    return n


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
        idle_timeout=number(values, "idle_timeout", idle_default, where),
        login_timeout=number(values, "login_timeout", login_default, where),
        max_line=int(number(values, "max_line", DEFAULT_MAX_LINE, where, integer=True, minimum=64)),
        terminator=check_terminator(values["terminator"], where) if values.get("terminator") else None,
        cert_accounts=dict(cert_accounts or {}),
        deadline=deadline_ms(values, where),
    )


def listener_section(name: str, values: dict[str, str]) -> ListenerConfig:
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
        elif key in _LISTENER_SECTION_KEYS or key in door_keys():
            plain[key] = value
        else:
            raise ConfigError(f"{where} {key}: unknown key (known: listen, {', '.join(LISTENER_KEYS)}, "
                              f"cert_accounts, {', '.join(sorted(door_keys()))})")
    if not plain.get("listen"):
        raise ConfigError(f"{where} listen: missing; for example listen = sip:tcp:6001:interface=127.0.0.1")
    listen = plain.pop("listen")
    config = parse_listen(listen, where=f"{where} listen", defaults=plain)
    settings = replace(config.settings, name=name, cert_accounts=cert_accounts)
    return replace(config, settings=settings)
