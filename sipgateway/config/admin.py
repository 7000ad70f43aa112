"""The admin listener: ``--admin ENDPOINT`` and the ``[admin]`` section (off by default).

It serves health, readiness, metrics and the live sessions over HTTP (sipgateway/admin/).
Those show device addresses, accounts and traffic, so off the loopback interface it must be
protected: either TLS with client certificates (our ``tls:`` endpoint with ``caCerts``) or
a user and password (HTTP basic authentication) over TLS.  A password over plain TCP is
refused: anyone on the path would read it.  The check is made on the endpoint string,
before anything is opened, so that ``check-config`` makes it too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sipgateway.config.values import ConfigError
from sipgateway.transports.endpointstrings import split_description

ADMIN_KEYS = ("listen", "user", "password")
#: endpoint types that are TLS (ours takes caCerts; Twisted's ssl: cannot ask for client certificates)
_TLS = frozenset({"tls", "siptls", "ssl"})
_CLIENT_CERT_TLS = frozenset({"tls", "siptls"})
_TCP = frozenset({"tcp", "tcp6", *_TLS})


@dataclass(frozen=True)
class AdminConfig:
    #: a Twisted server endpoint string, e.g. tcp:6080:interface=127.0.0.1
    listen: str
    #: HTTP basic authentication, when both are set
    user: str = ""
    password: str = field(default="", repr=False)


def admin_section(values: dict[str, str], listen: str | None = None) -> AdminConfig | None:
    """The ``[admin]`` section's values, ``listen`` replaced by ``--admin`` when given;
    None when neither names an endpoint (the admin listener is off)."""
    for key in values:
        if key not in ADMIN_KEYS:
            raise ConfigError(f"[admin] {key}: unknown key (known: {', '.join(ADMIN_KEYS)})")
    where = "--admin" if listen else "[admin] listen"
    endpoint = (listen or values.get("listen", "")).strip()
    user, password = values.get("user", ""), values.get("password", "")
    if not endpoint:
        if user or password:
            raise ConfigError("[admin] listen: missing; user and password apply to the admin listener, which is off "
                              "without it (for example listen = tcp:6080:interface=127.0.0.1)")
        return None
    if bool(user) != bool(password):
        missing = "password" if user else "user"
        raise ConfigError(f"[admin] {missing}: missing; HTTP basic authentication needs both user and password")
    if ":" in user:
        raise ConfigError("[admin] user: must not contain ':' (HTTP basic authentication separates user and "
                          "password with it)")
    check_protected(endpoint, where, bool(password))
    return AdminConfig(listen=endpoint, user=user, password=password)


def check_protected(endpoint: str, where: str, has_password: bool) -> None:
    """Raise ``ConfigError`` unless ``endpoint`` is on the loopback interface (or a UNIX
    socket), or is TLS with client certificates, or is TLS and a password is configured."""
    args, kwargs = split_description(endpoint)
    kind = args[0].lower() if args else ""
    if kind == "unix":
        return  # a local socket: its file's permissions say who may connect
    if kind in _TCP:
        interface = kwargs.get("interface", "")
        if not interface and kind in ("tcp", "tcp6") and len(args) > 2:
            interface = args[2]  # tcp:PORT:INTERFACE, as Twisted reads it
        if _loopback(interface):
            return  # only this machine can connect (a password, if any, never leaves it)
    tls = kind in _TLS
    if kind in _CLIENT_CERT_TLS and kwargs.get("caCerts"):
        return
    if tls and has_password:
        return
    what = "is not on the loopback interface" if kind in _TCP else f"is a {kind or '?'}: endpoint"
    if tls:
        fix = ("add caCerts=FILE (clients must present a certificate from that CA) or set [admin] user and "
               "password (HTTP basic authentication)")
    elif has_password:
        fix = ("HTTP basic authentication over plain TCP would send the password in clear text; use "
               "tls:PORT:privateKey=KEY:certKey=CERT[:caCerts=FILE]")
    else:
        fix = ("use tls:PORT:privateKey=KEY:certKey=CERT:caCerts=FILE (client certificates), or tls: with "
               "[admin] user and password, or interface=127.0.0.1")
    raise ConfigError(f"{where} = {endpoint}: {what}, and it shows device addresses, accounts and traffic: {fix}")


def _loopback(interface: str) -> bool:
    if interface.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface.strip("[]")).is_loopback
    except ValueError:
        return False  # empty (every interface) or a name
