"""A door is one line in transports/doors.py and a backend one line in acs/backends.py: the
config accepts what the tables hold, the service builds listeners and the backend from
them, and a backend is a service started and stopped with the others."""

from __future__ import annotations

import re

import pytest
from twisted.application.service import Service
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.reflect import namedAny
from zope.interface import implementer

from sipgateway.acs.backends import BACKENDS, Backend, BackendUnavailable, IBackend, split_url
from sipgateway.config import ConfigError, load
from sipgateway.lockout import MemoryAttempts
from sipgateway.pinguard import PinGuardedACS
from sipgateway.service import StartupError, make_service
from sipgateway.transports.doors import DOORS, Door
from sipgateway.transports.listening import ListenerService
from sipgateway.transports.raw import SIPFactory
from tests.test_gateway_accounts import Accounts, CirculationOnly

LISTEN = "sip:tcp:0:interface=127.0.0.1"


class EchoFactory(Factory):
    protocol = Protocol

    def __init__(self, gateway, settings) -> None:
        self.gateway, self.settings = gateway, settings


@implementer(IBackend)
class MemoryBackend(Service):
    """A backend that keeps no SC accounts of its own, as a forwarding one will not."""

    opened: list[MemoryBackend] = []

    def __init__(self, config) -> None:
        self.config = config
        self.acs, self.accounts, self.attempts = CirculationOnly(), Accounts(), MemoryAttempts()


def open_memory(config, reactor, run_as) -> MemoryBackend:
    backend = MemoryBackend(config)
    MemoryBackend.opened.append(backend)
    return backend


def open_broken(config, reactor, run_as):
    raise BackendUnavailable(f"--database {config.database!r}: the library system is on fire")


def listeners(top) -> list[ListenerService]:
    return [s for s in top if isinstance(s, ListenerService)]


def test_every_entry_names_a_callable() -> None:
    assert DOORS and BACKENDS
    for entry in [*DOORS.values(), *BACKENDS.values()]:
        assert callable(namedAny(entry.factory)), entry


def test_a_registered_door_is_a_listener_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DOORS, "echo", Door(f"{__name__}.EchoFactory", no_account="it has no accounts"))
    monkeypatch.setitem(BACKENDS, "mem", Backend(f"{__name__}.open_memory", "mem:NAME"))
    top = make_service(load(None, listen=[LISTEN, "echo:tcp:0:interface=127.0.0.1:max_line=100"],
                            database="mem:lib"), reactor=MemoryReactorClock())
    sip, echo = (service.factory.wrappedFactory for service in listeners(top))
    assert isinstance(sip, SIPFactory) and isinstance(echo, EchoFactory)
    assert echo.gateway is sip.gateway and echo.settings.max_line == 100
    with pytest.raises(ConfigError, match="account= cannot be used on a echo listener: it has no accounts"):
        load(None, listen=["echo:tcp:0:account=sc1"])


def test_an_unknown_kind_names_the_registered_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DOORS, "echo", Door(f"{__name__}.EchoFactory"))
    with pytest.raises(ConfigError, match="KIND is one of sip, telnet, http, echo"):
        load(None, listen=["ftp:tcp:21"])


def test_a_registered_backend_serves_the_gateway_and_runs_with_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "mem", Backend(f"{__name__}.open_memory", "mem:NAME"))
    MemoryBackend.opened.clear()
    top = make_service(load(None, listen=[LISTEN], database="mem:lib"), reactor=MemoryReactorClock())
    [backend] = MemoryBackend.opened
    assert backend.config.database == "mem:lib" and backend in list(top)
    gateway = listeners(top)[0].factory.wrappedFactory.gateway
    assert gateway.accounts is backend.accounts  # not the circulation backend: it keeps no accounts
    assert isinstance(gateway.acs, PinGuardedACS) and gateway.acs.acs is backend.acs
    top.startService()
    assert backend.running
    top.stopService()
    assert not backend.running


def test_a_backend_that_cannot_open_is_one_startup_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "broken", Backend(f"{__name__}.open_broken", "broken:X"))
    with pytest.raises(StartupError, match="^--database 'broken:x': the library system is on fire$"):
        make_service(load(None, listen=[LISTEN], database="broken:x"), reactor=MemoryReactorClock())


@pytest.mark.parametrize("url", ["postgres://x", "sqlite:", "gw.sqlite3", ""])
def test_a_url_without_a_registered_scheme_is_refused_once(url: str) -> None:
    forms = re.escape("sqlite:PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME")
    with pytest.raises(ValueError, match=f"^--database: {re.escape(repr(url))} is not supported; use {forms}$"):
        split_url(url, "--database")
