"""93 Login → 94 and 99 SC Status → 98 (with OCLC Wise's GG, the licences, when configured)."""

from __future__ import annotations

import functools
import re

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.exchange import fields as f
from sipgateway.exchange.base import Body, Exchange, ReplyContext, RequestContext
from sipgateway.sip2 import Message, sip_date

PROTOCOL_VERSION = "2.00"

#: BX positions (SIP2 98, supported messages): request code per position
BX_ORDER = ("23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19", "25", "15", "29", "65")
#: codes the session answers itself, whatever the backend
SESSION_CODES = frozenset({"99", "97", "93"})
#: between two licences in GG (98)
LICENCE_SEPARATOR = " / "
#: one licence name, such as Wise's LIC_BETAAL
_LICENCE = re.compile(r"[A-Za-z0-9_]+")


@functools.lru_cache(maxsize=64)
def supported_messages(supported: frozenset[str]) -> str:
    """BX: Y/N for each of the 16 positions."""
    return "".join("Y" if code in supported else "N" for code in BX_ORDER)


# --- 93 / 94 ---------------------------------------------------------------------------------

def _parse_login(msg: Message) -> rq.LoginRequest:
    return rq.LoginRequest(user=f.text(msg, "CN"), password=f.text(msg, "CO"), location=f.text(msg, "CP"),
                           extra=f.extra_fields(msg, ("CN", "CO", "CP")))


def _login_body(ok: bool, ctx: ReplyContext) -> Body:
    return {"ok": f.bit(ok)}, {}


def _unparse_login(req: rq.LoginRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"CN": req.user, "CO": req.password, "CP": req.location or ctx.location or None}
    f.add_extra(fields, req.extra, "utf-8")
    return {"uid_algorithm": "0", "pwd_algorithm": "0"}, fields


def _read_login(msg: Message) -> bool:
    return msg.fixed.get("ok") == "1"


LOGIN = Exchange("93", None, _parse_login, _login_body, lambda msg, screen: False, _unparse_login, _read_login)


# --- 99 / 98 ---------------------------------------------------------------------------------

def _parse_status(msg: Message) -> rq.StatusRequest:
    fx = msg.fixed
    width = fx.get("max_print_width", "").strip()  # a device polls with it: kept cheap
    return rq.StatusRequest(fx.get("status_code", "0"), int(width) if width.isdigit() else 0,
                            fx.get("protocol_version", PROTOCOL_VERSION))


def _status_body(status: m.ACSStatus, ctx: ReplyContext) -> Body:
    """98; the context fills in what the backend left empty (from the account)."""
    enc = ctx.encoding
    fixed = {
        "online_status": f.yn(status.online),
        "checkin_ok": f.yn(status.checkin_ok),
        "checkout_ok": f.yn(status.checkout_ok),
        "acs_renewal_policy": f.yn(status.renewal_ok),
        "status_update_ok": f.yn(status.status_update_ok),
        "offline_ok": f.yn(status.offline_ok),
        "timeout_period": f"{max(0, min(status.timeout_period, 999)):03d}",
        "retries_allowed": f"{max(0, min(status.retries_allowed, 999)):03d}",
        "date_time_sync": sip_date(ctx.now),
        "protocol_version": PROTOCOL_VERSION,
    }
    fields: dict[str, object] = {
        "AO": f.clean(status.institution or ctx.institution, enc),
        "AM": f.opt(status.library_name or ctx.library_name or None, enc),
        "BX": supported_messages(status.supported | SESSION_CODES),
        "AN": f.opt(status.terminal_location or ctx.location or None, enc),
        # the configured licences, else the backend's (a library system's own GG)
        "GG": licence_text(ctx.licences or status.licences, enc),
    }
    f.add_messages(fields, status.messages, enc)
    f.add_extra(fields, status.extra, enc)
    return fixed, fields


def parse_licences(text: str) -> tuple[tuple[str, ...], str | None]:
    """``LIC_BETAAL / LIC_VERLENGMOGELIJKHEDEN`` (or joined by commas): the names, and what is
    wrong with them (None: nothing)."""
    names = tuple(name.strip() for name in re.split(r"[/,]", text) if name.strip())
    for name in names:
        if not _LICENCE.fullmatch(name):
            return names, (f"{name!r} is not a licence name (letters, digits and _, joined by ' / ', for example "
                           "LIC_BETAAL / LIC_VERLENGMOGELIJKHEDEN)")
    if len(LICENCE_SEPARATOR.join(names)) > f.MAX_VALUE:
        return names, f"longer than the {f.MAX_VALUE} characters a 98's GG may hold"
    return names, None


def licence_text(licences: tuple[str, ...], encoding: str) -> str | None:
    """GG (OCLC Wise SIP2+): the licences joined by ' / ', as Wise writes them; None for none."""
    return f.clean(LICENCE_SEPARATOR.join(licences), encoding) if licences else None


def offline_status(screen: str, institution: str = "", supported: frozenset[str] = frozenset()) -> m.ACSStatus:
    """What a 98 says when nothing can be done now."""
    return m.ACSStatus(online=False, checkin_ok=False, checkout_ok=False, renewal_ok=False, status_update_ok=False,
                       timeout_period=0, institution=institution, supported=supported,
                       messages=m.Messages(screen=(screen,)))


def _unparse_status(req: rq.StatusRequest, ctx: RequestContext) -> Body:
    width = max(0, min(req.max_print_width, 999))
    return {"status_code": req.status_code if req.status_code in ("0", "1", "2") else "0",
            "max_print_width": f"{width:03d}", "protocol_version": req.protocol_version or PROTOCOL_VERSION}, {}


def _read_status(msg: Message) -> m.ACSStatus:
    fx = msg.fixed
    bx = f.text(msg, "BX")
    supported = frozenset(code for code, c in zip(BX_ORDER, bx, strict=False) if c in "Yy")
    return m.ACSStatus(
        online=f.flag(fx.get("online_status")) is True,
        checkin_ok=f.flag(fx.get("checkin_ok")) is True,
        checkout_ok=f.flag(fx.get("checkout_ok")) is True,
        renewal_ok=f.flag(fx.get("acs_renewal_policy")) is True,
        status_update_ok=f.flag(fx.get("status_update_ok")) is True,
        offline_ok=f.flag(fx.get("offline_ok")) is True,
        timeout_period=f.integer(fx.get("timeout_period")) if fx.get("timeout_period", "").isdigit() else 999,
        retries_allowed=f.integer(fx.get("retries_allowed")) if fx.get("retries_allowed", "").isdigit() else 999,
        institution=f.text(msg, "AO"), library_name=f.text(msg, "AM"), terminal_location=f.text(msg, "AN"),
        supported=supported, messages=f.messages(msg),
        licences=tuple(name.strip() for name in f.text(msg, "GG").split("/") if name.strip()),
        extra=f.extra_fields(msg, ("AO", "AM", "BX", "AN", "GG", "AF", "AG")),
    )


STATUS = Exchange("99", "status", _parse_status, _status_body,
                  lambda msg, screen: offline_status(screen), _unparse_status, _read_status, memo=True)
