"""Twisted's endpoint-string rules, said once: ':' separates parts, the first '=' in a part
makes it a keyword, a backslash takes the next character literally."""

from __future__ import annotations

import re

_KEYWORD = re.compile(r"((?:[^\\=]|\\.)*)=(.*)", re.DOTALL)
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def split_endpoint(text: str) -> list[str]:
    """Split on unescaped ':', keeping the escapes (the parts can be joined again)."""
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """The positional arguments and the keywords of an endpoint string, unescaped."""
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for part in split_endpoint(description):
        keyword = _KEYWORD.fullmatch(part)
        if keyword is None:
            args.append(_unescape(part))
        else:
            kwargs[_unescape(keyword.group(1))] = _unescape(keyword.group(2))
    return args, kwargs


def _unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text) if "\\" in text else text
