"""The request table: one ``Exchange`` per SIP2 request code, in both directions.

To serve a new request code: write its ``Exchange`` (parse, ACS method, reply body,
refusal, and the inverse pair for forwarding) in the module of its family, add it to
``EXCHANGES``, and give the ACS interface and the backends the method it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sipgateway.exchange.base import BadRequest, Body, Exchange, Reply, ReplyContext, RequestContext
from sipgateway.exchange.circulation import CHECKIN, CHECKOUT, RENEW, RENEW_ALL
from sipgateway.exchange.fees import FEE_PAID
from sipgateway.exchange.items import HOLD, ITEM_INFORMATION, ITEM_STATUS_UPDATE
from sipgateway.exchange.patrons import BLOCK_PATRON, END_SESSION, PATRON_ENABLE, PATRON_INFORMATION, PATRON_STATUS
from sipgateway.exchange.status import LOGIN, STATUS
from sipgateway.exchange.wise import (
    PAYMENTS_OVERVIEW,
    PUNCH_CARD_OPTIONS,
    PUNCH_CARD_PURCHASE,
    RENEWAL_OPTIONS,
    SAVE_USERNAME,
    USAGE_DEBIT,
)

EXCHANGES: Mapping[str, Exchange] = MappingProxyType({e.code: e for e in (
    LOGIN, STATUS, PATRON_STATUS, PATRON_INFORMATION, BLOCK_PATRON, PATRON_ENABLE, END_SESSION,
    CHECKOUT, RENEW, RENEW_ALL, CHECKIN, ITEM_INFORMATION, ITEM_STATUS_UPDATE, HOLD, FEE_PAID,
    # OCLC Wise SIP2+
    USAGE_DEBIT, PAYMENTS_OVERVIEW, RENEWAL_OPTIONS, PUNCH_CARD_OPTIONS, PUNCH_CARD_PURCHASE, SAVE_USERNAME,
)})

#: request codes whose replay would apply a side effect twice
SIDE_EFFECT_CODES = frozenset(code for code, e in EXCHANGES.items() if e.side_effect)

__all__ = ["EXCHANGES", "SIDE_EFFECT_CODES", "BadRequest", "Body", "Exchange", "Reply", "ReplyContext",
           "RequestContext"]
