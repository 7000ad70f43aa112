"""Where circulation goes: ``--acs URL`` (repeatable) and the ``[upstream]`` section, and the
upstream credentials an ``[account:NAME]`` section may give for pass-through mode.

``embedded`` (the default) is the SQLite library system in ``--database``; ``sip2://`` and
``sip2s://`` URLs forward to a library system's SIP2 server, tried in the order given (the
keys are in ``sipgateway.acs.upstream.url``).  ``--acs`` replaces the section's ``servers``
and keeps its other keys as defaults.  Errors name the option or key; passwords never
appear in them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sipgateway.acs.upstream.url import KEYS, UpstreamConfig, UpstreamConfigError, _read_password, parse_section
from sipgateway.config.values import ConfigError

EMBEDDED = "embedded"
#: keys of an [account:NAME] section for pass-through mode (not kept in the database)
UPSTREAM_ACCOUNT_KEYS = ("upstream_login", "upstream_password", "upstream_password_file")


def upstreams(acs: Sequence[str] | None, section: Mapping[str, str] | None) -> tuple[UpstreamConfig, ...]:
    """The upstream servers in failover order; () for the embedded library system."""
    if section is not None:
        for key in section:
            if key != "servers" and key not in KEYS:
                raise ConfigError(f"[upstream] {key}: unknown key (known: servers, {', '.join(KEYS)})")
    if acs:
        values, where = {**(section or {}), "servers": "\n".join(acs)}, "--acs"
        urls = [u.strip() for u in acs]
    elif section is not None:
        values, where = dict(section), "[upstream]"
        urls = [u.strip() for u in section.get("servers", "").replace(",", "\n").splitlines() if u.strip()]
    else:
        return ()
    if EMBEDDED in urls:
        if len(urls) > 1:
            raise ConfigError(f"{where}: {EMBEDDED} cannot be combined with sip2:// or sip2s:// servers "
                              "(give either embedded or the library system's servers)")
        return ()
    try:
        configs = parse_section(values, where=where)
    except UpstreamConfigError as e:
        raise ConfigError(str(e).replace("--acs servers", "--acs")) from None
    if len({c.pooled for c in configs}) > 1:
        raise ConfigError(f"{where}: either every server has login= (pooled mode) or none has (pass-through mode)")
    return configs


def upstream_credentials(values: Mapping[str, str], where: str) -> tuple[str | None, str]:
    """``upstream_login`` and ``upstream_password`` (or ``upstream_password_file``) of an
    ``[account:NAME]`` section: what a device bound to the account logs in upstream with."""
    login = values.get("upstream_login", "").strip() or None
    has_password = "upstream_password" in values
    has_file = bool(values.get("upstream_password_file", "").strip())
    if has_password and has_file:
        raise ConfigError(f"{where} upstream_password: give upstream_password or upstream_password_file, not both")
    if login is None:
        if has_password or has_file:
            raise ConfigError(f"{where} upstream_login: missing; an upstream password needs the login it belongs to")
        return None, ""
    if any(c in login for c in "|\r\n") or len(login) > 255:
        raise ConfigError(f"{where} upstream_login: at most 255 characters without '|' or line breaks")
    if has_file:
        password = _read_password(values["upstream_password_file"],
                                  lambda message: ConfigError(f"{where} upstream_{message}"))
    elif has_password:
        password = values["upstream_password"]
    else:
        raise ConfigError(f"{where} upstream_password: missing; upstream_login = {login} needs upstream_password "
                          "or upstream_password_file")
    if any(c in password for c in "|\r\n"):
        raise ConfigError(f"{where} upstream_password: contains '|' or a line break, which SIP2 cannot carry")
    return login, password
