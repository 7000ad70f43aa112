"""Telnet door: a ``login:``/``password:`` prompt, then SIP2 lines exactly as on raw TCP.

    telnet:tcp:6002:interface=127.0.0.1

Some self-check devices (and staff testing by hand) connect with telnet and log in at a
prompt instead of sending a 93. We offer SUPPRESS-GO-AHEAD, offer ECHO while the password
is typed (so the client stops echoing it) and withdraw it afterwards; everything else the
client proposes is refused. Credentials are checked with ``IAccounts.authenticate`` under the
gateway's lockout; 3 failed tries or ``login_timeout`` seconds without a login disconnect.
After ``Login OK.  Initiating SIP`` (the wording devices know from other SIP2 servers) every
line goes to a ``Session`` bound to the account. Lines end with CR, CR NUL, CR LF or LF.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.conch.telnet import ECHO, IAC, SGA, TelnetProtocol, TelnetTransport
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.gateway import Gateway
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from sipgateway.transports.framing import LineSplitter, LineTooLong
from sipgateway.transports.limits import peer_host
from sipgateway.transports.raw import LineDoor, describe_peer

MAX_TRIES = 3
MAX_CREDENTIAL = 128  # bytes; longer login or password lines are not credentials
PROMPT_LOGIN = b"login: "
PROMPT_PASSWORD = b"password: "
LOGIN_OK = b"Login OK.  Initiating SIP\r\n"
LOGIN_BAD = b"Invalid login\r\n"
LOGIN_UNAVAILABLE = b"Login unavailable, try again later\r\n"
GOODBYE_TIMEOUT = b"\r\nLogin timed out\r\n"
_ERASE = (0x08, 0x7F)  # BS, DEL: a person correcting a typo in character mode

log = Logger()

SessionFactory = Callable[..., Session]


def clean_credential(raw: bytes) -> str:
    """What was typed, with erase characters applied and control or stray IAC bytes dropped."""
    kept = bytearray()
    for byte in raw:
        if byte in _ERASE:
            if kept:
                kept.pop()
        elif byte >= 0x20 and byte != 0xFF:
            kept.append(byte)
    return kept.decode("utf-8", "replace").strip()


class SIPTelnetTransport(TelnetTransport):
    """``TelnetTransport`` with two fixes for devices.

    It holds a CR until the next byte says whether it was CR LF or CR NUL; a device that
    ends a message with a bare CR and waits for the reply would wait forever, so a CR
    that ends the received data is handed over at once and a following LF or NUL dropped.
    And a byte after IAC that is no telnet command closes the connection with a log line
    instead of an exception."""

    _after_cr = False

    def dataReceived(self, data: bytes) -> None:
        if self._after_cr and data:
            self._after_cr = False
            if data[:1] in (b"\n", b"\0"):
                data = data[1:]
        try:
            super().dataReceived(data)
        except ValueError as e:
            if e.args[:1] != ("Stumped",):
                raise
            self.state = "data"
            log.warn("{peer}: sent IAC followed by {byte!r}, which is no telnet command; closing",
                     peer=describe_peer(self.getPeer()), byte=e.args[1] if len(e.args) > 1 else b"")
            self.transport.loseConnection()
            return
        if self.state == "newline" and self.protocol is not None:
            self.state = "data"
            self._after_cr = True
            self.applicationDataReceived(b"\r")


class TelnetSIPProtocol(LineDoor, TelnetProtocol):
    """Runs on a ``SIPTelnetTransport``: the login dialogue, then a Session."""

    log = log

    def __init__(self, gateway: Gateway, settings: ListenerSettings,
                 session_factory: SessionFactory = Session) -> None:
        self.gateway = gateway
        self.settings = settings
        self.session_factory = session_factory
        self.session: Session | None = None
        self.state = "login"  # login → password → checking → sip, or closed
        self.peer = ""
        self.address = ""
        self.tries = 0
        self._user = ""
        #: login lines one at a time, then (max_line raised to the listener's) SIP2 lines
        self.splitter = LineSplitter(MAX_CREDENTIAL)
        self._login_timer = None
        self._negotiating: Deferred | None = None  # our last WILL/WONT ECHO, until answered
        self._in_input = False

    # --- connection ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        address: IAddress = self.transport.getPeer()
        self.peer = f"{self.settings.name} {describe_peer(address)}"
        self.address = peer_host(address)
        self.log.info("{peer}: telnet connected", peer=self.peer)
        self.transport.will(SGA).addErrback(_ignore)
        if self.settings.login_timeout > 0:
            self._login_timer = self.gateway.reactor.callLater(self.settings.login_timeout, self._timed_out)
        self._write(PROMPT_LOGIN)

    def connectionLost(self, reason: Failure | None = None) -> None:
        previous, self.state = self.state, "closed"
        self._cancel_timer()
        if self.session is not None:
            self.session.connection_lost()
            self.log.info("{peer}: disconnected", peer=self.peer)
        elif previous != "closed":
            self.log.info("{peer}: disconnected before logging in", peer=self.peer)

    def _write(self, data: bytes) -> None:
        # Raw bytes, as the device expects them; only IAC needs doubling on a telnet stream.
        if self.state != "closed":
            self.transport.transport.write(data.replace(IAC, IAC + IAC))

    def _close(self) -> None:
        if self.state != "closed":
            self.transport.loseConnection()

    def _cancel_timer(self) -> None:
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._login_timer = None

    def _timed_out(self) -> None:
        self._login_timer = None
        if self.state in ("login", "password", "checking"):
            self.log.info("{peer}: no telnet login within {s:g} s; disconnecting", peer=self.peer,
                          s=self.settings.login_timeout)
            self._write(GOODBYE_TIMEOUT)
            self._close()

    # --- option negotiation ----------------------------------------------------------------

    def enableLocal(self, option: bytes) -> bool:
        # ECHO only while a password is being typed (we asked); we never echo anything else.
        return option == SGA or (option == ECHO and self.state == "password")

    def enableRemote(self, option: bytes) -> bool:
        return option == SGA

    def disableLocal(self, option: bytes) -> None:
        """The client turned off SGA or ECHO: nothing to undo on our side."""

    def disableRemote(self, option: bytes) -> None:
        """The client stopped suppressing go-aheads: nothing to undo on our side."""

    def _sync_echo(self) -> None:
        """ECHO on (the client stops echoing) exactly while the password is being typed."""
        if self.state == "closed":
            return
        us = self.transport.getOptionState(ECHO).us
        if us.negotiating:
            # Decide again once the client has answered. (A Deferred already fired while
            # still negotiating means the connection went: nothing more to decide.)
            if self._negotiating is not None and not self._negotiating.called:
                self._negotiating.addBoth(lambda _: self._sync_echo())
            return
        want = self.state == "password"
        if want and us.state == "no":
            self._negotiating = self.transport.will(ECHO).addErrback(_ignore)
        elif not want and us.state == "yes":
            self._negotiating = self.transport.wont(ECHO).addErrback(_ignore)

    # --- input -----------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.state == "sip":
            self.lines_received(data)
            return
        self.splitter.push(data)  # while checking, it waits there
        self._login_input()

    def _login_input(self) -> None:
        if self._in_input:  # an answer that came at once, inside the loop below: it goes on
            return
        self._in_input = True
        try:
            self._login_lines()
        finally:
            self._in_input = False

    def _login_lines(self) -> None:
        while self.state in ("login", "password"):
            try:
                line = self.splitter.next_line()
            except LineTooLong:
                self.log.warn("{peer}: telnet login line longer than {n} bytes; closing",
                              peer=self.peer, n=MAX_CREDENTIAL)
                self._close()
                return
            if line is None:
                return
            if self.state == "login":
                self._got_user(clean_credential(line))
            else:
                self._got_password(clean_credential(line))
        if self.state == "sip":
            self.lines_received(b"")  # what came after the password

    def _got_user(self, user: str) -> None:
        if not user:
            self._write(PROMPT_LOGIN)
            return
        self._user = user
        self.state = "password"
        self._sync_echo()
        self._write(PROMPT_PASSWORD)

    def _got_password(self, password: str) -> None:
        user = self._user
        self.state = "checking"
        self._sync_echo()
        self._write(b"\r\n")  # the client echoed nothing, not even the line end
        self.tries += 1
        d = self.gateway.authenticate(self.address, user, password, "", f"{self.peer} (telnet)",
                                      listener=self.settings.name)
        d.addCallbacks(self._checked, self._check_failed, callbackArgs=(user,), errbackArgs=(user,))

    def _checked(self, account, user: str) -> None:
        if account is None:
            self.log.warn("{peer}: telnet login failed for account {user!r} (try {n} of {max})",
                          peer=self.peer, user=user, n=self.tries, max=MAX_TRIES)
            if self.state == "checking":
                self._refused(LOGIN_BAD)
            return
        if self.state != "checking":  # hung up while we were checking
            return
        self._cancel_timer()
        self.log.info("{peer}: telnet login as {user!r} (institution {inst!r})", peer=self.peer,
                      user=account.name, inst=account.institution)
        self._write(LOGIN_OK)
        self.state = "sip"
        self.splitter.max_line = self.settings.max_line
        self.session = self.session_factory(self.gateway, self.settings, self._write, self._close, self.peer,
                                            address=self.address)
        self.session.bind_account(account)
        # Stop reading from a client that does not read its replies (as raw TCP does).
        self.transport.transport.registerProducer(self, True)
        self._login_input()  # whatever arrived while we were checking

    def _check_failed(self, failure: Failure, user: str) -> None:
        self.log.failure("{peer}: checking the telnet login for {user!r} failed", failure,
                         peer=self.peer, user=user)
        if self.state == "checking":
            self._refused(LOGIN_UNAVAILABLE)

    def _refused(self, message: bytes) -> None:
        self._write(message)
        if self.tries >= MAX_TRIES:
            self.log.warn("{peer}: {n} failed telnet logins; disconnecting", peer=self.peer, n=self.tries)
            self._close()
            return
        self.state = "login"
        self._write(PROMPT_LOGIN)
        self._login_input()

    @property
    def byte_transport(self) -> Any:
        return self.transport.transport  # the TCP transport under the telnet one


def _ignore(failure: Failure) -> None:
    """Option negotiation the client refused or never answered: nothing to do."""


class TelnetSIPFactory(ServerFactory):
    """Builds ``SIPTelnetTransport(TelnetSIPProtocol)`` for each connection."""

    def __init__(self, gateway: Gateway, settings: ListenerSettings,
                 session_factory: SessionFactory = Session) -> None:
        self.gateway = gateway
        self.settings = settings
        self.session_factory = session_factory

    def buildProtocol(self, addr: IAddress) -> SIPTelnetTransport:
        transport = SIPTelnetTransport(TelnetSIPProtocol, self.gateway, self.settings, self.session_factory)
        transport.factory = self
        return transport
