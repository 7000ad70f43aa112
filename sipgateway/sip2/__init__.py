"""The SIP2 codec: one message table, lenient parse, strict format, checksums, dates.

Pure Python: no Twisted, no I/O. The message table is in ``messages``.
"""

from sipgateway.sip2.codec import Message, checksum, format_message, parse, to_json
from sipgateway.sip2.dates import parse_sip_date, sip_date
from sipgateway.sip2.errors import ChecksumError, SIP2Error, UnknownMessageError
from sipgateway.sip2.messages import MESSAGES, FixedField, MessageSpec
from sipgateway.sip2.tags import SECRET_TAGS, TAG_NAMES, tag_name

__all__ = [
    "MESSAGES",
    "SECRET_TAGS",
    "TAG_NAMES",
    "ChecksumError",
    "FixedField",
    "Message",
    "MessageSpec",
    "SIP2Error",
    "UnknownMessageError",
    "checksum",
    "format_message",
    "parse",
    "parse_sip_date",
    "sip_date",
    "tag_name",
    "to_json",
]
