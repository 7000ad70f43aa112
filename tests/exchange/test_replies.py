"""Reply builders, as exact bytes on the wire."""

from __future__ import annotations

from datetime import datetime

from sipgateway.acs import model as m
from sipgateway.exchange import EXCHANGES, Reply, ReplyContext
from sipgateway.sip2 import format_message

NOW = datetime(2024, 1, 5, 10, 15, 0)
DUE = datetime(2024, 1, 26, 23, 59, 59)


def wire(reply: Reply) -> bytes:
    code, fixed, fields = reply
    return format_message(code, fixed, fields)


def circulation(code: str, **result: object) -> bytes:
    r = m.CirculationResult(patron_id="100001", item_id="200001", title="Dune", **result)
    request = {"12": "11", "30": "29"}[code]
    return wire(EXCHANGES[request].build(r, ReplyContext("MAIN", NOW)))


def test_successful_checkout_and_renewal_carry_no_bl_or_cq() -> None:
    # SIP2 lists no BL/CQ for 12 and 30; jsip2 rebuilds the checksum from the fields it
    # knows and rejects a reply that has them.
    for code in ("12", "30"):
        assert circulation(code, ok=True, due_date=DUE, renewal_ok=code == "30", desensitize=True,
                           patron_valid=True, pin_valid=True) == (
            f"{code}1{'Y' if code == '30' else 'N'}UY20240105    101500"
            "AOMAIN|AA100001|AB200001|AJDune|AH20240126    235959|").encode()


def test_refused_checkout_carries_bl_and_cq_when_a_pin_was_given_as_evergreen_does() -> None:
    refused = {"ok": False, "desensitize": False, "messages": m.Messages(screen=("Blocked",))}
    assert circulation("12", **refused, patron_valid=False, pin_valid=True) == (
        b"120NUN20240105    101500AOMAIN|AA100001|AB200001|AJDune|AH|BLN|CQY|AFBlocked|")
    # no PIN given (pin_valid None): BL only
    assert circulation("30", **refused, patron_valid=True) == (
        b"300NUN20240105    101500AOMAIN|AA100001|AB200001|AJDune|AH|BLY|AFBlocked|")
