"""Keys of forwarding mode that are not the upstream URLs': ``[upstream] cached_answer_age``
and the rewrite rules of an ``[account:NAME]`` section (``rules``, the language of
sipgateway/acs/upstream/rules.py).  Errors name the key; a bad rule quotes its line."""

from __future__ import annotations

import configparser
from collections.abc import Mapping, Sequence
from typing import Any

from sipgateway.acs.upstream.backend import DEFAULT_CACHED_ANSWER_AGE
from sipgateway.acs.upstream.rules import RuleError, RuleSet, parse_rules
from sipgateway.config.values import ConfigError, number

#: keys of the [upstream] section besides ``servers`` and the URL keys
SECTION_KEYS = ("cached_answer_age",)
#: an answer older than a day is not an answer about now
MAX_CACHED_ANSWER_AGE = 86400.0


def cached_answer_age(section: Mapping[str, str] | None) -> float:
    """``cached_answer_age`` (seconds): how old an answer to 17 or 63 may be to answer a
    device, marked as cached, when the library system does not answer by its deadline; 0
    turns it off."""
    where, values = "[upstream]", dict(section or {})
    age = number(values, "cached_answer_age", DEFAULT_CACHED_ANSWER_AGE, where)
    if age > MAX_CACHED_ANSWER_AGE:
        raise ConfigError(f"{where}: cached_answer_age={values['cached_answer_age']!r} must be at most "
                          f"{MAX_CACHED_ANSWER_AGE:g} seconds (0 turns answering from cache off)")
    return age


def account_rules(values: Mapping[str, str], where: str) -> RuleSet | None:
    """The ``rules`` key of an ``[account:NAME]`` section, checked; None when absent."""
    text = values.get("rules", "")
    if not text.strip():
        return None
    try:
        return parse_rules(text, where=f"{where} rules")
    except RuleError as e:
        raise ConfigError(str(e)) from None


def forwarding_keys(parser: configparser.ConfigParser) -> dict[str, float]:
    """``Config``'s values of this module's keys."""
    section = dict(parser["upstream"]) if parser.has_section("upstream") else None
    return {"cached_answer_age": cached_answer_age(section)}


def check_rules_forwarded(upstreams: Sequence[Any], accounts: Sequence[Any]) -> None:
    """Rules without a library system to forward to are an error: the embedded library
    system does not apply them."""
    for account in accounts:
        if account.rules and not upstreams:
            raise ConfigError(f"[account:{account.name}] rules: rewrite rules apply to what is forwarded to a library "
                              "system; give --acs sip2://HOST:PORT or [upstream] servers (or remove rules)")
