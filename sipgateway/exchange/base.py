"""One entry of the request table: everything the gateway knows about one request code.

An ``Exchange`` says, for one SIP2 request code, in both directions:

* device → gateway: ``parse`` (request message → model request), ``method`` (the ACS
  method that answers it), ``build`` (model result → reply, whose code is always the
  specification's, ``MessageSpec.reply``), ``refused`` (the result that means "not done",
  for failure replies), and whether it has side effects (replayed, never run twice) and
  whether its reply may be remembered for the second (``memo``);
* gateway → library system (the forwarding backend): ``unparse`` (model request → request
  message) and ``read`` (reply message → model result).

Builders are pure functions of ``(result, ReplyContext)``: everything else a reply depends
on is in the context, which is why a remembered reply can be keyed on exactly those two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sipgateway.acs.model import Account, Terminal
from sipgateway.sip2 import MESSAGES, Message

#: (code, fixed fields, variable fields): what ``format_message`` takes
Reply = tuple[str, dict[str, str], dict[str, object]]
#: the fixed and variable fields of a message, without its code
Body = tuple[dict[str, str], dict[str, object]]


class BadRequest(Exception):
    """A request that parses but cannot be served as it is (a renewal naming no item, a fee
    amount that is no number): it gets its own failure reply with this screen message."""

    def __init__(self, screen: str) -> None:
        super().__init__(screen)
        self.screen = screen


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """Everything a reply depends on besides the ACS's answer.

    ``institution`` is the AO to answer with (the request's, else the account's); ``now``
    the transaction date (whole seconds); ``language`` the one the request asked in;
    ``library_name`` and ``location`` fill in a 98 where the backend left them empty;
    ``licences`` are the configured OCLC Wise SIP2+ licences a 98 reports (GG)."""

    institution: str
    now: datetime
    encoding: str = "utf-8"
    language: str = "000"
    library_name: str = ""
    location: str = ""
    licences: tuple[str, ...] = ()
    #: the hash, computed once: a context keys the reply memo of every request it serves
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.institution, self.now, self.encoding, self.language,
                                                 self.library_name, self.location, self.licences)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def answering(cls, msg: Message, account: Account | None, terminal: Terminal | None, now: datetime,
                  encoding: str, licences: tuple[str, ...] = ()) -> ReplyContext:
        """The context of the reply to ``msg`` from a session logged in as ``account``."""
        return cls(institution=msg.get("AO") or (account.institution if account else ""), now=now,
                   encoding=encoding, language=msg.fixed.get("language", "000"),
                   library_name=account.library_name if account else "",
                   location=terminal.location if terminal else "", licences=licences)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a request sent to a library system carries besides the model request: the
    institution (AO), the terminal password (AC), the location (CP, AP) and the date."""

    institution: str
    now: datetime
    terminal_password: str = field(default="", repr=False)
    location: str = ""


@dataclass(frozen=True, eq=False)
class Exchange:
    code: str
    #: the IACS method answering it (``None``: the session answers it itself)
    method: str | None
    parse: Callable[[Message], Any]
    body: Callable[[Any, ReplyContext], Body]
    refused: Callable[[Message, str], Any]
    unparse: Callable[[Any, RequestContext], Body]
    read: Callable[[Message], Any]
    side_effect: bool = False
    memo: bool = False
    #: the reply's code, from the message table
    reply: str = field(init=False)

    def __post_init__(self) -> None:
        reply = MESSAGES[self.code].reply
        assert reply is not None, self.code
        object.__setattr__(self, "reply", reply)

    def build(self, result: Any, ctx: ReplyContext) -> Reply:
        fixed, fields = self.body(result, ctx)
        return self.reply, fixed, fields

    def failure(self, msg: Message, ctx: ReplyContext, screen: str) -> Reply:
        """The reply saying "not done" to ``msg``, with ``screen`` as its screen message."""
        return self.build(self.refused(msg, screen), ctx)

    def request_message(self, request: Any, ctx: RequestContext) -> Reply:
        fixed, fields = self.unparse(request, ctx)
        return self.code, fixed, fields
