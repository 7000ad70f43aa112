"""``sipgateway rules test --config FILE --account NAME MESSAGE``: print MESSAGE after the
account's rewrite rules (the ``rules`` key of its ``[account:NAME]`` section).

A request (9x, 0x, 1x, 2x, 3x codes the SC sends) goes through the account's request rules,
as the gateway changes it before forwarding; a reply through its reply rules, as the
gateway changes the library system's reply before answering.  Only the account's section
is read, so this works on a copy of the config without its password files.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from sipgateway.acs.upstream.rules import RuleSet, rewrite_raw
from sipgateway.config.forwarding import account_rules
from sipgateway.config.load import read_ini
from sipgateway.config.values import ConfigError
from sipgateway.sip2 import SIP2Error


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="rules_action", required=True, metavar="ACTION")
    t = actions.add_parser("test", help="print a message after an account's rewrite rules",
                           description="Print MESSAGE (a request or a reply) after the rewrite rules of "
                                       "[account:NAME] in FILE; a message with AY/AZ gets a fresh checksum.")
    t.add_argument("--config", "-c", required=True, metavar="FILE", help="the gateway's ini configuration")
    t.add_argument("--account", "-a", required=True, metavar="NAME", help="the SC account whose rules apply")
    t.add_argument("--encoding", default="utf-8", help="character set of the message (default utf-8)")
    t.add_argument("message", metavar="MESSAGE", help="one SIP2 message, e.g. '101YNN20240506    103000AB1|CTMAIN|'")
    t.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """0: printed; 1: the message does not parse; 2: the config or the account's rules are unusable."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        rules = _rules(args.config, args.account)
    except ConfigError as e:
        err.write(f"sipgateway rules test: {e}\n")
        return 2
    try:
        result = rewrite_raw(rules, args.message.rstrip("\r\n"), args.encoding)
    except (SIP2Error, LookupError, UnicodeError) as e:
        err.write(f"sipgateway rules test: the message cannot be read: {e}\n")
        return 1
    out.write(result + "\n")
    return 0


def _rules(path: str, account: str) -> RuleSet:
    parser = read_ini(path)  # as the gateway reads it
    section = f"account:{account}"
    if not parser.has_section(section):
        raise ConfigError(f"--account: {path!r} has no [{section}] section")
    ruleset = account_rules(dict(parser[section]), f"[{section}]")
    if ruleset is None:
        raise ConfigError(f"[{section}] rules: none given in {path!r}")
    return ruleset
