r"""Rewrite rules: a small declarative language for changing forwarded messages, per account.

Rules are the ``rules`` key of an ``[account:NAME]`` section, one per line, applied in
order: to the device's requests before they are forwarded, and to the library system's
replies before they are answered. Words are separated by spaces; quote a word that holds
spaces ("Ask at the desk" or 'Ask at the desk'); a backslash is just a backslash (``\d``);
``#`` starts a comment line::

    [account:sorter]
    rules =
        # sort bin from destination and alert type; first matching row wins, * matches anything
        table bins ANNEX * -> 3
        table bins MAIN 01 -> 4
        table bins * * -> 9
        reply 10 set CL from bins CT CV
        reply 10,18 drop CH CS
        reply * replace AF "(?i)please see staff" "Ask at the desk"
        request * rename AO MAIN main
        reply * rename AO main MAIN

The lines:

``table NAME PATTERN... -> VALUE``
    a row of table NAME (every row of a table has as many patterns); a pattern is a value,
    ``*`` (anything) or ``""`` (empty or absent)
``DIRECTION CODES set TAG VALUE``
    set variable field TAG to VALUE
``DIRECTION CODES set TAG from TABLE SOURCE...``
    look the SOURCE values up in TABLE (a source is a field tag such as CT, or a fixed
    field's name such as ``alert``); the first matching row gives TAG's value, no match
    leaves TAG as it was
``DIRECTION CODES drop TAG...``
    remove fields
``DIRECTION CODES replace TAG REGEX REPLACEMENT``
    replace what REGEX matches in each value of TAG (Python ``re`` syntax; ``\1`` in the
    replacement is the first group)
``DIRECTION CODES rename TAG OLD NEW``
    a value OLD of TAG becomes NEW (institution ids, location codes)

DIRECTION is ``request`` or ``reply``; CODES is ``*`` or message codes separated by commas
(request codes for ``request``, reply codes for ``reply``). Tags are two capital letters or
digits; AY and AZ belong to the codec and cannot be touched.

Every rule is checked when the configuration is read; a bad one is a start-up error that
quotes its line. Regular expressions are compiled then and must be safe on any input: no
back-references, a repeated part is one character or character class (no repeated groups or
alternatives, which can take exponential time), and at most two open-ended repetitions.
Each value is at most 255 characters and a rule looks at most at its first 8 values, so a
rule costs at most milliseconds whatever a device sends. A value a rule produces loses
'|' and line breaks and is cut to 255 characters.
"""

from __future__ import annotations

import re
import re._constants as sre  # the parse tree's opcodes, to prove a pattern safe
import re._parser as sre_parse
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from sipgateway.sip2 import MESSAGES, Message, format_message, parse

MAX_VALUE = 255
#: values of one field a rule looks at
MAX_VALUES = 8
MAX_PATTERN = 200
MAX_OPEN_REPEATS = 2
MAX_RULES = 500
_TAG = re.compile(r"[A-Z0-9]{2}")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_CLEAN = str.maketrans({"|": " ", "\r": " ", "\n": " "})
_RESERVED = frozenset({"AY", "AZ"})
_DIRECTIONS = {"request": "request", "reply": "response"}


class RuleError(ValueError):
    """A rule that cannot be used; the message quotes the line."""


@dataclass(frozen=True)
class Rule:
    direction: str                 # "request" or "response" (the message table's word)
    codes: frozenset[str] | None   # None: every code
    action: str                    # set, lookup, drop, replace, rename
    tag: str = ""
    tags: tuple[str, ...] = ()
    value: str = ""
    old: str = ""
    table: str = ""
    sources: tuple[str, ...] = ()
    pattern: re.Pattern | None = None
    line: str = ""

    def applies(self, msg: Message) -> bool:
        return self.codes is None or msg.code in self.codes


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    tables: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, msg: Message) -> Message:
        """``msg`` after the rules for its direction; a new Message (``msg`` is not changed)."""
        direction = MESSAGES[msg.code].direction if msg.code in MESSAGES else ""
        out = Message(msg.code, dict(msg.fixed), {t: list(v) if type(v) is list else v for t, v in msg.fields.items()})
        for rule in self.rules:
            if rule.direction == direction and rule.applies(out):
                _apply(rule, out, self.tables)
        return out


def parse_rules(text: str, where: str = "rules") -> RuleSet:
    """Read and check rules (the ``rules`` value); raises ``RuleError`` quoting a bad line."""
    rules: list[Rule] = []
    tables: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("#", ";"))]
    if len(lines) > MAX_RULES:
        raise RuleError(f"{where}: more than {MAX_RULES} rules")
    for line in lines:
        def error(reason: str, line: str = line) -> RuleError:
            return RuleError(f"{where}: {line!r}: {reason}")
        try:
            words = _words(line)
        except ValueError as e:
            raise error(f"cannot split into words ({e})") from None
        if words[0] == "table":
            name, row = _table_row(words, error)
            rows = tables.setdefault(name, [])
            if rows and len(rows[0][0]) != len(row[0]):
                raise error(f"table {name} has rows with {len(rows[0][0])} patterns; this one has {len(row[0])}")
            rows.append(row)
        else:
            rules.append(_rule(words, line, error))
    for rule in rules:
        if rule.action == "lookup":
            rows = tables.get(rule.table)
            if rows is None:
                raise RuleError(f"{where}: {rule.line!r}: no table named {rule.table}")
            if len(rows[0][0]) != len(rule.sources):
                raise RuleError(f"{where}: {rule.line!r}: table {rule.table} rows have {len(rows[0][0])} patterns, "
                                f"the rule gives {len(rule.sources)} sources")
    return RuleSet(tuple(rules), {name: tuple(rows) for name, rows in tables.items()})


def rewrite_raw(rules: RuleSet, raw: str | bytes, encoding: str = "utf-8") -> str:
    """``raw`` (one SIP2 message, request or reply) after ``rules``, as text: what
    ``sipgateway rules test`` prints. A checksum in ``raw`` is not checked; the result has a
    fresh one (and the same AY) when ``raw`` had one. Raises ``SIP2Error`` for a message
    that does not parse."""
    data = raw.encode(encoding) if isinstance(raw, str) else raw
    msg = parse(data.strip(b"\r\n"), encoding, verify=False)
    out = rules.apply(msg)
    fields = {t: v for t, v in out.fields.items() if t not in _RESERVED}
    with_ed = "AZ" in msg.fields
    body = format_message(out.code, out.fixed, fields, sequence=msg.sequence if with_ed else None,
                          error_detection=with_ed, encoding=encoding)
    return body.decode(encoding)


# --- reading ----------------------------------------------------------------------------------

def _words(line: str) -> list[str]:
    """Split on spaces; "..." or '...' hold spaces; a backslash is an ordinary character
    (regular expressions and replacements need it: \\d, \\1)."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    return list(lexer)


def _table_row(words: list[str], error) -> tuple[str, tuple[tuple[str, ...], str]]:
    if len(words) < 5 or words[-2] != "->":
        raise error("a table row is: table NAME PATTERN... -> VALUE")
    name = words[1]
    if not _NAME.fullmatch(name):
        raise error(f"table name {name!r}: use lowercase letters, digits and _")
    patterns = tuple(words[2:-2])
    return name, (patterns, _text(words[-1], error))


def _rule(words: list[str], line: str, error) -> Rule:
    if len(words) < 3 or words[0] not in _DIRECTIONS:
        raise error("a rule starts with request or reply, then the message codes, then the action")
    direction = _DIRECTIONS[words[0]]
    codes = _codes(words[1], direction, error)
    action, args = words[2], words[3:]
    base = {"direction": direction, "codes": codes, "line": line}
    if action == "set":
        if len(args) >= 3 and args[1] == "from":
            tag = _target(args[0], error)
            sources = tuple(_source(s, codes, error) for s in args[3:])
            if not sources:
                raise error("set TAG from TABLE needs at least one source field")
            return Rule(action="lookup", tag=tag, table=args[2], sources=sources, **base)
        if len(args) != 2:
            raise error('set is: set TAG VALUE, or set TAG from TABLE SOURCE...; quote a value with spaces')
        return Rule(action="set", tag=_target(args[0], error), value=_text(args[1], error), **base)
    if action == "drop":
        if not args:
            raise error("drop needs the tags to remove")
        return Rule(action="drop", tags=tuple(_target(t, error) for t in args), **base)
    if action == "replace":
        if len(args) != 3:
            raise error('replace is: replace TAG REGEX REPLACEMENT (quote words with spaces)')
        pattern = _regex(args[1], error)
        try:
            pattern.sub(args[2], "")
        except (re.error, IndexError) as e:
            raise error(f"replacement {args[2]!r}: {e}") from None
        return Rule(action="replace", tag=_target(args[0], error), pattern=pattern, value=args[2], **base)
    if action == "rename":
        if len(args) != 3:
            raise error("rename is: rename TAG OLD NEW")
        return Rule(action="rename", tag=_target(args[0], error), old=_text(args[1], error),
                    value=_text(args[2], error), **base)
    raise error(f"unknown action {action!r} (set, drop, replace, rename)")


def _codes(word: str, direction: str, error) -> frozenset[str] | None:
    if word == "*":
        return None
    codes = frozenset(c.strip() for c in word.split(",") if c.strip())
    for code in codes:
        spec = MESSAGES.get(code)
        if spec is None:
            raise error(f"{code!r} is not a SIP2 message code")
        if spec.direction != direction:
            which = "request" if direction == "request" else "reply"
            raise error(f"{code} is not a {which} message ({'reply' if which == 'request' else 'request'} rules "
                        f"change those)")
    if not codes:
        raise error("no message codes")
    return codes


def _target(tag: str, error) -> str:
    if not _TAG.fullmatch(tag):
        raise error(f"{tag!r} is not a field tag (two capital letters or digits)")
    if tag in _RESERVED:
        raise error(f"{tag} is the codec's (sequence number and checksum) and cannot be changed")
    return tag


def _source(word: str, codes: frozenset[str] | None, error) -> str:
    if _TAG.fullmatch(word):
        return word
    if not _NAME.fullmatch(word):
        raise error(f"source {word!r} is neither a field tag nor a fixed field name")
    if codes is None:
        raise error(f"fixed field {word!r} needs explicit message codes, not *")
    for code in codes:
        if word not in MESSAGES[code].fixed_names:
            raise error(f"{word!r} is not a fixed field of message {code}")
    return word


def _text(value: str, error) -> str:
    if len(value) > MAX_VALUE or any(c in value for c in "|\r\n"):
        raise error(f"value {value[:40]!r} must be at most {MAX_VALUE} characters without '|' or line breaks")
    return value


def _regex(text: str, error) -> re.Pattern:
    if len(text) > MAX_PATTERN:
        raise error(f"regular expression longer than {MAX_PATTERN} characters")
    try:
        tree = sre_parse.parse(text)
        problem = _regex_problem(tree.data if hasattr(tree, "data") else list(tree))
        compiled = re.compile(text)
    except (re.error, OverflowError, RecursionError) as e:
        raise error(f"regular expression {text!r}: {e}") from None
    if problem is not None:
        raise error(f"regular expression {text!r}: {problem}")
    return compiled


_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}
_SINGLE = {sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY, sre.CATEGORY}


def _regex_problem(items: Sequence) -> str | None:
    """Why the pattern could take more than polynomial time (or too much of it), or None."""
    open_repeats = 0
    stack = [list(items)]
    while stack:
        for op, av in stack.pop():
            if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
                return "back-references are not allowed"
            if op in _REPEATS:
                low, high, body = av
                if not _single(body):
                    return ("a repeated part must be one character or character class "
                            "(no repeated groups, alternatives or nested repetition)")
                if high == sre.MAXREPEAT or high - low > 16:
                    open_repeats += 1
            elif op == sre.SUBPATTERN:
                stack.append(list(av[3]))
            elif op == sre.BRANCH:
                stack.extend(list(p) for p in av[1])
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                stack.append(list(av[1]))
            elif op == getattr(sre, "ATOMIC_GROUP", None):
                stack.append(list(av))
    if open_repeats > MAX_OPEN_REPEATS:
        return f"at most {MAX_OPEN_REPEATS} open-ended repetitions (*, +, {{n,}})"
    return None


def _single(body) -> bool:
    items = list(body)
    while len(items) == 1 and items[0][0] == sre.SUBPATTERN:
        items = list(items[0][1][3])
    return len(items) == 1 and items[0][0] in _SINGLE


# --- applying ---------------------------------------------------------------------------------

def _clean(value: str) -> str:
    return value.translate(_CLEAN)[:MAX_VALUE]


def _apply(rule: Rule, msg: Message, tables: dict) -> None:
    fields = msg.fields
    if rule.action == "set":
        _set(msg, rule.tag, rule.value)
    elif rule.action == "lookup":
        key = tuple(_source_value(msg, s) for s in rule.sources)
        for patterns, value in tables[rule.table]:
            if all(p == "*" or p == k for p, k in zip(patterns, key, strict=True)):
                _set(msg, rule.tag, value)
                break
    elif rule.action == "drop":
        for tag in rule.tags:
            fields.pop(tag, None)
    elif rule.action in ("replace", "rename"):
        value = fields.get(rule.tag)
        if value is None:
            return
        values = value if type(value) is list else [value]
        changed = [_one(rule, v) if i < MAX_VALUES else v for i, v in enumerate(values)]
        fields[rule.tag] = changed if type(value) is list else changed[0]


def _one(rule: Rule, value: str) -> str:
    if rule.action == "rename":
        return rule.value if value == rule.old else value
    assert rule.pattern is not None
    return _clean(rule.pattern.sub(rule.value, value[:MAX_VALUE]))


def _source_value(msg: Message, source: str) -> str:
    if _TAG.fullmatch(source):
        return msg.get(source) or ""
    return msg.fixed.get(source, "")


def _set(msg: Message, tag: str, value: str) -> None:
    spec = MESSAGES.get(msg.code)
    repeatable = spec is not None and tag in spec.repeatable
    msg.fields[tag] = [value] if repeatable else value
