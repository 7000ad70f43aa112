"""A PostgreSQL URL and its password.

The URL is libpq's (``postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?KEY=VALUE]``).  A
password is never kept in the URL the gateway passes around and prints: ``split_password``
takes it out at start-up, and the connection finds it here by the URL without it
(``remember``, ``password_for``); the database process gets it in its set-up frame, over
its private pipe.  Without one, libpq looks for it itself (``PGPASSFILE``, ``~/.pgpass``,
``PGPASSWORD``).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

#: URL without password -> password, for the connections this process opens
_passwords: dict[str, str] = {}
#: a password file larger than this is not a password file
MAX_PASSWORD_FILE = 4096


def split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password, and the password (None when it has none)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}")), unquote(parts.password)


def redact(url: str) -> str:
    """``url`` as it may be printed: its password, if any, replaced by ``***``."""
    safe, password = split_password(url)
    if password is None:
        return url
    parts = urlsplit(safe)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def read_password_file(path: str, where: str) -> str:
    """The password in ``path``: its first line.  ``ValueError`` naming ``where`` otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_PASSWORD_FILE + 1)
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{where}: cannot read {path!r}: {getattr(e, 'strerror', None) or e}") from None
    if len(text) > MAX_PASSWORD_FILE:
        raise ValueError(f"{where}: {path!r} is longer than {MAX_PASSWORD_FILE} bytes; it should hold the "
                         "password alone")
    password = text.splitlines()[0] if text else ""
    if not password:
        raise ValueError(f"{where}: {path!r} is empty; put the database password on its first line")
    return password


def remember(url: str, password: str | None) -> None:
    """Connections to ``url`` (without password) use ``password`` from now on."""
    if password:
        _passwords[url] = password


def password_for(url: str) -> str | None:
    return _passwords.get(url)


def describe(url: str) -> str:
    """``USER@HOST:PORT/DBNAME`` for messages: what the URL names, never its password."""
    parts = urlsplit(url)
    user = parts.username or ""
    where = parts.hostname or "localhost"
    if parts.port:
        where += f":{parts.port}"
    return f"{user + '@' if user else ''}{where}{parts.path or '/'}"
