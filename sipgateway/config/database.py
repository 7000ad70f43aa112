"""``[gateway] database`` and ``database_password_file``: a PostgreSQL URL's password is
taken out of the URL (so that the URL can be printed) and kept apart; the file's first
line is the password when the URL has none."""

from __future__ import annotations

from sipgateway.acs.postgresql import is_url
from sipgateway.acs.postgresql.target import read_password_file, split_password


def database_password(url: str, password_file: str | None) -> tuple[str, str]:
    """The URL without its password, and the password ("" for none: libpq then reads
    PGPASSFILE or ~/.pgpass itself).  ``ValueError`` names the key."""
    if not is_url(url.strip()):
        if password_file:
            raise ValueError("[gateway] database_password_file: only a postgresql:// database has a password")
        return url, ""
    safe, password = split_password(url.strip())
    if password_file:
        if password is not None:
            raise ValueError("[gateway] database_password_file: the database URL has a password already; give it "
                             "in one place only")
        password = read_password_file(password_file, "[gateway] database_password_file")
    return safe, password or ""
