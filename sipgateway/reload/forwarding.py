"""Reloading what the forwarding backend reads at each request: every account's rewrite
rules (``rules``) and ``cached_answer_age``.  The library system's servers and their keys
(``--acs``, ``[upstream]``) are connections held open: they change at a restart, and a
reload that changes them says so."""

from __future__ import annotations

from sipgateway.config import Config
from sipgateway.reload.machinery import Change, Running


def _rules(config: Config) -> dict:
    return {account.name: account.rules for account in config.accounts if account.rules}


def prepare(running: Running, new: Config) -> Change | None:
    find = getattr(running.backend, "upstream", None)
    if find is None:  # the embedded library system: rules are refused at start-up there
        return None
    upstream = find()
    old_rules, new_rules = _rules(running.config), _rules(new)
    changed = sorted(name for name in old_rules.keys() | new_rules.keys()
                     if old_rules.get(name) != new_rules.get(name))
    parts = [f"rewrite rules of {', '.join(changed)}"] if changed else []
    if running.config.cached_answer_age != new.cached_answer_age:
        parts.append(f"cached_answer_age {new.cached_answer_age:g} s")
    if not parts:
        return None

    def apply() -> None:
        upstream.rules = new_rules  # read afresh by each request
        upstream.recent.age = new.cached_answer_age

    return Change("forwarding: " + "; ".join(parts), apply)
