"""The three shapes a SIP2 message takes over HTTP, read and written; no Twisted here.

* OCLC Wise's JSON tunnel (``/sip2https/services``): ``{"sip2request": "<message>", "token":
  "<token>"}`` in, ``{"sip2response": "<reply>", "token": "<token>"}`` out.
* Raw (``/sip2``): the message as a ``text/plain`` body, the reply likewise.
* SIP2Mediator's JSON (``/sip2/json``, the shape Evergreen's SIP2Mediator posts to its HTTP
  backend): ``{"code": "93", "fixed_fields": ["0", "0"], "fields": [{"CN": "..."}, ...]}``;
  ``fixed_fields`` are the fixed fields' values in the message's order (joined, they are the
  fixed part), ``fields`` one single-key object per variable field in wire order.

Whatever cannot be read as one of them is a ``BadBody``, whose text is the 400 answer's
``error``: it names the problem and never quotes a value (it could be a password).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sipgateway.sip2 import MESSAGES, Message

#: characters the session strips from a line anyway, and the terminators a client may add
_TRIM = " \t\0\r\n"
#: SIP2Mediator writes "AY1AZ1234" as one field (it splits on "|" only): read it as AY and AZ
_AY_AZ = re.compile(r"(\d+)AZ([0-9A-Fa-f]{4})")


class BadBody(ValueError):
    """The request body is not what the path takes; the message says why (HTTP 400)."""


def sip_text(text: str, what: str) -> str:
    """One SIP2 message as text: a trailing terminator dropped, empty or several refused."""
    text = text.strip(_TRIM)
    if not text:
        raise BadBody(f"{what} is empty; it must hold one SIP2 message")
    if "\r" in text or "\n" in text:
        raise BadBody(f"{what} holds more than one line; send one SIP2 message per request")
    return text


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8-sig"))  # JSON is UTF-8 (RFC 8259); a BOM is forgiven
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise BadBody(f"the body is not JSON ({e.msg}: line {e.lineno} column {e.colno})") from None
    if not isinstance(value, dict):
        raise BadBody(f"the body is a JSON {_kind(value)}, not an object")
    return value


def _kind(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


# --- OCLC Wise ---------------------------------------------------------------------------

def wise_request(body: bytes) -> tuple[str, str]:
    """(the SIP2 message, the token: "" for none) of a Wise tunnel request."""
    obj = _json_object(body)
    request = obj.get("sip2request")
    if not isinstance(request, str):
        raise BadBody('"sip2request" is missing or not a string' if request is None
                      else f'"sip2request" is a JSON {_kind(request)}, not a string')
    token = obj.get("token")
    if token is None:
        token = ""
    elif not isinstance(token, str):
        raise BadBody(f'"token" is a JSON {_kind(token)}, not a string')
    return sip_text(request, '"sip2request"'), token


def wise_response(reply: str, token: str) -> bytes:
    return json.dumps({"sip2response": reply, "token": token}).encode("utf-8")


# --- raw -----------------------------------------------------------------------------------

def raw_request(body: bytes, content_type: bytes | None) -> str:
    """The message of a ``text/plain`` body, in the charset its Content-Type names (UTF-8 by default)."""
    charset = "utf-8"
    for param in (content_type or b"").split(b";")[1:]:
        name, _, value = param.strip().partition(b"=")
        if name.strip().lower() == b"charset":
            charset = value.strip().strip(b'"').decode("ascii", "replace")
    try:
        text = body.decode(charset)
    except LookupError:
        raise BadBody(f"the Content-Type names charset {charset!r}, which is unknown; send UTF-8") from None
    except UnicodeDecodeError:
        raise BadBody(f"the body is not {charset} text") from None
    return sip_text(text, "the body")


# --- SIP2Mediator's JSON --------------------------------------------------------------------

def mediator_request(body: bytes) -> str:
    """A SIP2Mediator message as SIP2 text (code, fixed part, fields, AY/AZ last)."""
    obj = _json_object(body)
    code = obj.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 99:
        code = f"{code:02d}"  # SIP2Mediator's own example writes "code": 93
    if not isinstance(code, str) or len(code) != 2 or not code.isalnum() or not code.isascii():
        raise BadBody('"code" must be the two-character message code, for example "93"')
    fixed = obj.get("fixed_fields") or []
    if not isinstance(fixed, list) or not all(isinstance(v, str) for v in fixed):
        raise BadBody('"fixed_fields" must be an array of strings (the fixed fields\' values in order)')
    fields = obj.get("fields") or []
    if isinstance(fields, dict):  # lenient: one object of tags instead of an array of them
        fields = [{tag: value} for tag, value in fields.items()]
    if not isinstance(fields, list):
        raise BadBody('"fields" must be an array of objects such as {"CN": "sc1"}')
    parts, tail = [], {}
    for field in fields:
        if not isinstance(field, dict):
            raise BadBody('"fields" must be an array of objects such as {"CN": "sc1"}')
        for tag, value in field.items():
            if len(tag) != 2 or not tag.isascii():
                raise BadBody(f"field tag {tag[:10]!r} is not two characters")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise BadBody(f"field {tag} is a JSON {_kind(value)}, not a string")
            if "|" in value or "\r" in value or "\n" in value:
                raise BadBody(f"field {tag} holds '|', CR or LF, which SIP2 cannot carry in a value")
            joined = _AY_AZ.fullmatch(value) if tag == "AY" else None
            if joined:
                tail["AY"], tail["AZ"] = joined.group(1), joined.group(2)
            elif tag in ("AY", "AZ"):
                tail[tag] = value
            else:
                parts.append(f"{tag}{value}|")
    fixed_part = "".join(fixed)
    if any(c in fixed_part for c in "|\r\n"):
        raise BadBody("\"fixed_fields\" hold '|', CR or LF")
    error_detection = "".join(f"{tag}{tail[tag]}" for tag in ("AY", "AZ") if tag in tail)
    return code + fixed_part + "".join(parts) + error_detection


def mediator_response(msg: Message) -> bytes:
    """A reply in SIP2Mediator's shape: fixed fields in the message's order, fields in wire order."""
    spec = MESSAGES.get(msg.code)
    fixed = [msg.fixed.get(f.name, "") for f in spec.fixed] if spec is not None else []
    fields = [{tag: v} for tag, value in msg.fields.items()
              for v in (value if isinstance(value, list) else (value,))]
    return json.dumps({"code": msg.code, "fixed_fields": fixed, "fields": fields}).encode("utf-8")


#: the answer to ``{"code": "XS"}`` (end session), as Evergreen's SIP2Mediator backend gives it
END_SESSION_REPLY = json.dumps({"code": "XT", "fixed_fields": [], "fields": []}).encode("utf-8")


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode("utf-8")
