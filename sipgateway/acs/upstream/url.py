"""Upstream URLs: ``sip2://HOST:PORT[?KEY=VALUE&...]`` and ``sip2s://HOST:PORT[?...]``.

Keys (every one optional):

``profile``        generic, koha, evergreen, folio, alma or symphony (default generic)
``login``          the 93's login user id (CN); given: pooled mode, absent: pass-through mode
``password``       the 93's password (CO); or ``password_file`` (read once, at start-up; one
                   trailing newline removed; ``%d/NAME`` means ``$CREDENTIALS_DIRECTORY/NAME``,
                   the directory where systemd's LoadCredential= puts credentials)
``location``       the 93's location code (CP), and the current location of requests
``institution``    the institution id (AO) sent when the device's account does not give one
``pool``           connections in pooled mode, 1..64 (default 4)
``timeout``        seconds to wait for each reply (and for a connection), 0.1..300 (default 10)
``encoding``       the upstream's character set (default per profile: utf-8, cp850 for folio)
``checksum``       how our requests carry AY/AZ: bytes (the specification), characters (a sum
                   of characters, for servers that sum decoded text) or none
``terminator``     CR or CRLF after each request (default per profile)
``cafile``         sip2s: PEM file of the CAs trusted for the server's certificate (default:
                   the system's trust store); the host name in the URL must match the
                   certificate either way
``certfile``       sip2s: PEM client certificate (chain) presented to the server
``keyfile``        sip2s: PEM private key of ``certfile`` (default: the key is in ``certfile``)

Values are percent-decoded (write ``&`` as ``%26`` and ``,`` as ``%2C``); an IPv6 host is
written in brackets. Errors are one line naming the key and the value, and never show a
password: the URL in an error or in ``str(config)`` has ``password=****``.

``parse_section`` reads the same keys from the ``[upstream]`` section of the ini file:
``servers = URL, URL, ...`` (the failover order) and any other key as the default for every
URL, which a URL's own query overrides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from sipgateway.acs.upstream.profiles import CHECKSUM_MODES, PROFILES, TERMINATORS, Profile
from sipgateway.acs.upstream.wire import WireSettings
from sipgateway.sip2 import SIP2Error
from sipgateway.sip2.wire import codec_name

KEYS = ("profile", "login", "password", "password_file", "location", "institution", "pool", "timeout",
        "encoding", "checksum", "terminator", "cafile", "certfile", "keyfile")
TLS_KEYS = ("cafile", "certfile", "keyfile")
DEFAULT_POOL = 4
MAX_POOL = 64
DEFAULT_TIMEOUT = 10.0
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 300.0
#: longest password file read (a credential, not a document)
MAX_PASSWORD_FILE = 4096
_USERINFO = re.compile(r"//[^/?#]*@")


class UpstreamConfigError(ValueError):
    """A bad upstream URL or [upstream] value; the message names the key and the value."""


@dataclass(frozen=True)
class UpstreamConfig:
    """One upstream server, validated. ``password`` is never in ``repr`` or ``str``."""

    host: str
    port: int
    tls: bool = False
    profile: str = "generic"
    login: str | None = None
    password: str = field(default="", repr=False)
    location: str = ""
    institution: str = ""
    pool: int = DEFAULT_POOL
    timeout: float = DEFAULT_TIMEOUT
    encoding: str = "utf-8"
    checksum: str = "bytes"
    terminator: str = "CR"
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    #: log every line to and from the server (masked): [gateway] trace, not a URL key
    trace: bool = True

    @property
    def pooled(self) -> bool:
        """Pooled mode (a login of our own); otherwise each device logs in through."""
        return self.login is not None

    @property
    def server(self) -> str:
        """``host:port`` (``[v6]:port``), the name used in logs and errors."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def quirks(self) -> Profile:
        return PROFILES[self.profile]

    def wire(self) -> WireSettings:
        return WireSettings.for_profile(self.quirks, encoding=self.encoding, checksum=self.checksum,
                                        terminator=self.terminator, trace=self.trace)

    def url(self) -> str:
        """The URL with every key spelled out and the password masked."""
        keys = [f"profile={self.profile}"]
        if self.login is not None:
            keys += [f"login={self.login}", "password=****"]
        keys += [f"{k}={v}" for k, v in (("location", self.location), ("institution", self.institution)) if v]
        keys += [f"pool={self.pool}", f"timeout={self.timeout:g}", f"encoding={self.encoding}",
                 f"checksum={self.checksum}", f"terminator={self.terminator}"]
        keys += [f"{k}={getattr(self, k)}" for k in TLS_KEYS if getattr(self, k)]
        return f"{'sip2s' if self.tls else 'sip2'}://{self.server}?{'&'.join(keys)}"

    def __str__(self) -> str:
        return self.url()


def redact(text: str) -> str:
    """``text`` (a URL as written) with the password masked: the value of password=, anything
    before an '@' in the authority, and every piece after password= that is not a known
    KEY=VALUE (an unencoded '&' inside the password would otherwise show the rest of it)."""
    head, q, query = text.partition("?")
    head = _USERINFO.sub("//****@", head)
    if not q:
        return head
    pieces, after_password = [], False
    for piece in query.split("&"):
        key, eq, _value = piece.partition("=")
        key = unquote(key).strip().lower()
        if key == "password" and eq:
            piece, after_password = f"{_key_as_written(piece)}=****", True
        elif after_password and not (eq and key in KEYS):
            piece = "****"
        pieces.append(piece)
    return f"{head}?{'&'.join(pieces)}"


def _key_as_written(piece: str) -> str:
    return piece.partition("=")[0]


def parse_url(text: str, defaults: Mapping[str, str] | None = None, where: str = "--acs") -> UpstreamConfig:
    """Validate one upstream URL; ``defaults`` are keys its query may override."""
    shown = redact(text.strip())

    def error(message: str) -> UpstreamConfigError:
        return UpstreamConfigError(f"{where}: {shown}: {message}")

    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as e:
        raise error(f"not a valid URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("sip2", "sip2s"):
        raise error("an upstream is sip2://HOST:PORT or sip2s://HOST:PORT (or embedded)")
    if "@" in parts.netloc:
        raise error("put the login and password in the query: ?login=NAME&password=SECRET")
    if not parts.hostname:
        raise error("no host; write sip2://HOST:PORT (an IPv6 address in brackets)")
    if port is None or port == 0:
        raise error("no port; write sip2://HOST:PORT")
    if parts.path not in ("", "/") or parts.fragment:
        raise error("nothing may follow HOST:PORT but ?KEY=VALUE&...")
    query = _query(parts.query, error)
    values = dict(defaults or {})
    if "password" in query or "password_file" in query:  # the URL's own secret replaces the default one
        values.pop("password", None)
        values.pop("password_file", None)
    values.update(query)
    return _config(parts.hostname, port, scheme == "sip2s", values, error)


def parse_section(values: Mapping[str, str], where: str = "[upstream]") -> tuple[UpstreamConfig, ...]:
    """The ``[upstream]`` section: ``servers`` (comma- or line-separated URLs, in failover
    order) and default keys for all of them."""
    defaults = {}
    for key, value in values.items():
        if key != "servers" and key not in KEYS:
            raise UpstreamConfigError(f"{where} {key}: unknown key (known: servers, {', '.join(KEYS)})")
        if key != "servers":
            defaults[key] = value
    urls = [u.strip() for u in re.split(r"[,\n]", values.get("servers", "")) if u.strip()]
    if not urls:
        raise UpstreamConfigError(f"{where} servers: missing; for example servers = sip2://ils.example.org:6001")
    configs = tuple(parse_url(u, defaults, where=f"{where} servers") for u in urls)
    seen: set[str] = set()
    for config in configs:
        if config.server in seen:
            raise UpstreamConfigError(f"{where} servers: {config.server} is listed twice")
        seen.add(config.server)
    return configs


# --- pieces -----------------------------------------------------------------------------------

def _query(query: str, error) -> dict[str, str]:
    out: dict[str, str] = {}
    after_password = False
    for piece in query.split("&"):
        if not piece:
            continue
        key, eq, value = piece.partition("=")
        key = unquote(key).strip().lower()
        if not (eq and key in KEYS) and after_password:
            raise error("a piece after password= is not KEY=VALUE; write '&' inside the password as %26")
        if not eq:
            raise error(f"{piece!r} is not KEY=VALUE")
        if key not in KEYS:
            raise error(f"{key}: unknown key (known: {', '.join(KEYS)})")
        if key in out:
            raise error(f"{key} is given twice")
        out[key] = unquote(value)
        after_password = after_password or key == "password"
    return out


def _config(host: str, port: int, tls: bool, values: dict[str, str], error) -> UpstreamConfig:
    for key in values:
        if key not in KEYS:
            raise error(f"{key}: unknown key (known: {', '.join(KEYS)})")
    profile_name = values.get("profile", "generic").strip().lower()
    if profile_name not in PROFILES:
        raise error(f"profile={profile_name!r} is not one of {', '.join(PROFILES)}")
    profile = PROFILES[profile_name]

    login = values.get("login")
    if login is not None:
        login = login.strip()
        if not login:
            raise error("login= is empty; leave login out for pass-through mode")
        _field_text(login, "login", error)
    if "password" in values and "password_file" in values:
        raise error("give password= or password_file=, not both")
    if "password_file" in values:
        password = _read_password(values["password_file"], error)
    else:
        password = values.get("password", "")
    if password and login is None:
        raise error("a password needs login= (pooled mode); without login each device logs in itself")
    if login is not None and "password" not in values and "password_file" not in values:
        raise error(f"login={login!r} needs password= or password_file=")
    if "|" in password or "\r" in password or "\n" in password:
        raise error("the password contains '|' or a line break, which SIP2 cannot carry")

    location = _field_text(values.get("location", "").strip(), "location", error)
    institution = _field_text(values.get("institution", "").strip(), "institution", error)
    pool = _number(values, "pool", DEFAULT_POOL, 1, MAX_POOL, error, integer=True)
    timeout = _number(values, "timeout", DEFAULT_TIMEOUT, MIN_TIMEOUT, MAX_TIMEOUT, error)

    encoding_text = values.get("encoding", profile.encoding).strip()
    try:
        encoding = codec_name(encoding_text)
    except SIP2Error:
        raise error(f"encoding={encoding_text!r} is not an ASCII-compatible character set "
                    "(for example utf-8, latin-1, cp850)") from None
    checksum = values.get("checksum", profile.checksum).strip().lower()
    if checksum not in CHECKSUM_MODES:
        raise error(f"checksum={checksum!r} must be one of {', '.join(CHECKSUM_MODES)}")
    terminator = values.get("terminator", profile.terminator).strip().upper()
    if terminator not in TERMINATORS:
        raise error(f"terminator={terminator!r} must be CR or CRLF")

    files = {key: values[key].strip() for key in TLS_KEYS if values.get(key, "").strip()}
    if files and not tls:
        raise error(f"{next(iter(files))}= is only for sip2s:// (TLS) upstreams")
    if "keyfile" in files and "certfile" not in files:
        raise error("keyfile= needs certfile= (the client certificate it belongs to)")
    for key, path in files.items():
        _readable(key, path, error)

    return UpstreamConfig(host=host, port=port, tls=tls, profile=profile_name, login=login, password=password,
                          location=location, institution=institution, pool=int(pool), timeout=timeout,
                          encoding=encoding, checksum=checksum, terminator=terminator, cafile=files.get("cafile"),
                          certfile=files.get("certfile"), keyfile=files.get("keyfile"))


def _field_text(value: str, key: str, error) -> str:
    if len(value) > 255 or any(c in value for c in "|\r\n"):
        raise error(f"{key}={value[:40]!r} must be at most 255 characters without '|' or line breaks")
    return value


def _number(values: Mapping[str, str], key: str, default: float, low: float, high: float, error, *,
            integer: bool = False) -> float:
    raw = values.get(key, "").strip()
    if not raw:
        return default
    try:
        n = int(raw) if integer else float(raw)
    except ValueError:
        raise error(f"{key}={raw!r} is not {'a whole number' if integer else 'a number'}") from None
    if not low <= n <= high:
        raise error(f"{key}={raw!r} must be between {low:g} and {high:g}")
    return n


def _read_password(path: str, error) -> str:
    path = path.strip()
    if path.startswith("%d/"):
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise error(f"password_file={path!r}: %d/ means systemd's $CREDENTIALS_DIRECTORY, which is not set "
                        "(use LoadCredential= in the unit, or give the full path)")
        path = os.path.join(directory, path[3:])
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PASSWORD_FILE + 1)
    except OSError as e:
        raise error(f"password_file={path!r} cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_PASSWORD_FILE:
        raise error(f"password_file={path!r} is longer than {MAX_PASSWORD_FILE} bytes; is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"password_file={path!r} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise error(f"password_file={path!r} is empty")
    return text


def _readable(key: str, path: str, error) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise error(f"{key}={path!r} cannot be read: {e.strerror or e}") from None
