"""The doors, by the KIND that starts a listener's ``KIND:ENDPOINT``: the one place a new
door is added (one line here, plus its module).

A door is a protocol factory that hands a ``Session`` what arrives at one listener; the
endpoint it listens on is any server endpoint string.  ``config`` checks ``--listen`` and
``[listener:NAME] listen`` against this table and ``service`` builds every listener's
factory from it.  Factories are named by their dotted path and imported only when a
listener of that kind is built: reading a config loads no door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.python.reflect import namedAny

if TYPE_CHECKING:
    from twisted.internet.interfaces import IProtocolFactory

    from sipgateway.gateway import Gateway
    from sipgateway.settings import ListenerSettings


@dataclass(frozen=True)
class Door:
    #: dotted name of a callable (gateway, listener settings) -> the listener's protocol factory
    factory: str
    #: why ``account=`` cannot bind a listener of this kind to an SC account ("" when it can)
    no_account: str = ""
    #: listener keys only this door takes (in its section or endpoint string)
    keys: tuple[str, ...] = ()
    #: dotted name of a callable (values of ``keys``, where) -> the door's own settings, given
    #: to it as ``ListenerSettings.options``; it raises ConfigError naming a bad key
    options: str = ""
    #: this door's defaults for the keys every door takes
    defaults: Mapping[str, str] = field(default_factory=dict)


DOORS: dict[str, Door] = {
    "sip": Door("sipgateway.transports.raw.SIPFactory"),
    "telnet": Door("sipgateway.transports.telnet.TelnetSIPFactory",
                   no_account="the login prompt decides the account (use a sip: listener to bind one)"),
    "http": Door("sipgateway.transports.httpdoor.HTTPDoorFactory", keys=("trusted_proxies", "max_sessions", "max_body"),
                 options="sipgateway.config.http.http_options", defaults={"idle_timeout": "7200"}),
}


def door_keys() -> frozenset[str]:
    """Every door's own keys (``Door.keys``)."""
    return frozenset(key for door in DOORS.values() for key in door.keys)


def door_factory(kind: str, gateway: Gateway, settings: ListenerSettings) -> IProtocolFactory:
    """The protocol factory of a listener of ``kind`` (a key of ``DOORS``)."""
    return namedAny(DOORS[kind].factory)(gateway, settings)
