"""The OCLC Wise SIP2+ features this library system does not offer: punch cards (Y1, Y3;
the punch-card balance of a 41 with FG) and user names (X1).  Each is answered "not done"
in its own reply, with a screen message saying so: the device shows it and carries on."""

from __future__ import annotations

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs import wise as w

PUNCH_CARDS = "Punch cards are not offered by this library"
USERNAMES = "User names are not offered by this library"


def punch_card_options(request: rq.PunchCardOptionsRequest) -> w.PunchCardOptions:
    return w.PunchCardOptions(ok=False, messages=m.Messages(screen=(PUNCH_CARDS,)))


def punch_card_purchase(request: rq.PunchCardPurchase) -> w.PunchCardPurchaseResult:
    return w.PunchCardPurchaseResult(ok=False, messages=m.Messages(screen=(PUNCH_CARDS,)))


def save_username(request: rq.UsernameRequest) -> w.UsernameResult:
    return w.UsernameResult(ok=False, patron_id=request.patron_id, username=request.username,
                            messages=m.Messages(screen=(USERNAMES,)))
