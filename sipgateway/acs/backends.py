"""The ACS backends, by the scheme of the URL that names one (``--database sqlite:PATH``):
the one place a new backend is added (one line here, plus its module).

A backend's factory opens it at start-up, in the plugin's ``makeService``: before twistd
daemonizes and drops privileges (``--uid``), so that every problem stops start-up with one
line and files are made as the user the gateway will run as (privileges.py).  It returns
an ``IBackend``: a service that twistd starts and stops with the listeners (a database
process, connections to a library system), and that gives the gateway its circulation,
who may log in, and where failed logins and wrong PINs are counted.  ``config`` checks a
URL's scheme against this table, so a wrong one is refused before anything is opened;
factories are named by their dotted path and imported only when a backend is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.application.service import IService
from twisted.python.reflect import namedAny
from zope.interface import Attribute

if TYPE_CHECKING:
    from sipgateway.config import Config
    from sipgateway.privileges import RunAs


class IBackend(IService):
    """Two optional methods feed the admin listener (sipgateway/admin/): ``unready()``, a
    one-line reason why it cannot serve now or None (``/readyz``, ``sipgateway_acs_up``: the
    embedded one checks its database process and file; the forwarding one says when no
    upstream server is in service), and ``collectors()``, prometheus_client
    collectors of its own figures read at scrape time (``/metrics``).  A backend without
    them counts as always ready, with no figures of its own."""

    acs = Attribute("IACS: circulation, every request but the login")
    accounts = Attribute("IAccounts: who may log in (93, telnet, the account a door names); the backend's own "
                         "SC accounts, or another provider's when the backend keeps none")
    attempts = Attribute("AttemptStore (sipgateway.attempts): failed logins and wrong PINs, kept across restarts")


class BackendUnavailable(Exception):
    """A backend cannot be opened at start-up; the message is the one line start-up ends with."""


@dataclass(frozen=True)
class Backend:
    #: dotted name of a callable (config, reactor, run_as) -> IBackend, opened as ``run_as``
    factory: str
    #: what a URL of this scheme looks like, for error messages
    form: str
    #: the option that names it: --database (the gateway's own database, and its library
    #: system when --acs is embedded) or --acs (a library system reached over the network)
    option: str = "--database"


BACKENDS: dict[str, Backend] = {
    "sqlite": Backend("sipgateway.startup.open_embedded", "sqlite:PATH"),
    "postgresql": Backend("sipgateway.startup.open_embedded", "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME"),
    "sip2": Backend("sipgateway.forwarding.open_forwarding", "sip2://HOST:PORT", "--acs"),
    "sip2s": Backend("sipgateway.forwarding.open_forwarding", "sip2s://HOST:PORT", "--acs"),
}


def split_url(url: str, where: str, option: str = "--database") -> tuple[str, str]:
    """The scheme of a backend's URL and the rest ("sqlite", "gw.sqlite3" for
    "sqlite:gw.sqlite3"); a ``ValueError`` naming ``where`` unless the scheme is in
    ``BACKENDS`` for ``option`` and something follows it."""
    scheme, colon, rest = url.strip().partition(":")
    if not colon or scheme not in BACKENDS or BACKENDS[scheme].option != option or not rest:
        forms = " or ".join(backend.form for backend in BACKENDS.values() if backend.option == option)
        raise ValueError(f"{where}: {url!r} is not supported; use {forms}")
    return scheme, rest


def open_backend(config: Config, reactor: Any, run_as: RunAs) -> IBackend:
    """The backend ``config.upstreams`` (``--acs``) or else ``config.database`` names, opened;
    ``StartupError`` when it cannot be."""
    if config.upstreams:
        scheme = "sip2s" if config.upstreams[0].tls else "sip2"
    else:
        scheme, _ = split_url(config.database, "--database")
    return namedAny(BACKENDS[scheme].factory)(config, reactor, run_as)
