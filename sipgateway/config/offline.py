"""Offline store-and-forward policy: the ``offline*`` keys of ``[upstream]`` (the default)
and of each ``[account:NAME]`` (that account's; a key it leaves out is the default's).

    offline = refuse | accept     what a device may do while every library system is down
    offline_loan_days = 14        the due date given to a checkout accepted offline
    offline_max_checkouts = 10    checkouts per patron waiting to be sent, at most
    offline_items = 3900* 3901*   item barcodes that may circulate offline (glob patterns;
    offline_patrons = 2*          empty: all), likewise patron barcodes

and, in ``[upstream]`` only, for pass-through mode (no ``login`` in the URLs), the login the
replay uses on a connection of its own (pooled mode replays on the pool):

    offline_replay_login = gateway-replay
    offline_replay_password = ...
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase

from sipgateway.config.values import ConfigError, number

OFFLINE_KEYS = frozenset({"offline", "offline_loan_days", "offline_max_checkouts", "offline_items",
                          "offline_patrons"})
#: keys of [upstream] only
REPLAY_KEYS = frozenset({"offline_replay_login", "offline_replay_password"})
UPSTREAM_OFFLINE_KEYS = OFFLINE_KEYS | REPLAY_KEYS
DEFAULT_LOAN_DAYS = 14
DEFAULT_MAX_CHECKOUTS = 10
#: a loan given offline is at most this long, a patron's offline checkouts at most this many
MAX_LOAN_DAYS = 366
MAX_CHECKOUTS = 1000
MAX_PATTERNS = 100


@dataclass(frozen=True)
class OfflinePolicy:
    accept: bool = False
    loan_days: int = DEFAULT_LOAN_DAYS
    max_checkouts: int = DEFAULT_MAX_CHECKOUTS
    #: glob patterns; empty: every item (patron) may circulate offline
    items: tuple[str, ...] = ()
    patrons: tuple[str, ...] = ()

    def item_allowed(self, item_id: str) -> bool:
        return not self.items or any(fnmatchcase(item_id, p) for p in self.items)

    def patron_allowed(self, patron_id: str) -> bool:
        return not self.patrons or any(fnmatchcase(patron_id, p) for p in self.patrons)


@dataclass(frozen=True)
class OfflineConfig:
    default: OfflinePolicy = OfflinePolicy()
    #: (account name, its policy) for accounts that set an offline key
    accounts: tuple[tuple[str, OfflinePolicy], ...] = ()
    #: pass-through mode: what the replay logs in upstream as
    replay_login: str = ""
    replay_password: str = field(default="", repr=False)
    _by_account: Mapping[str, OfflinePolicy] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_account", dict(self.accounts))

    def policy(self, account: str) -> OfflinePolicy:
        return self._by_account.get(account, self.default)

    @property
    def any_accepts(self) -> bool:
        return self.default.accept or any(p.accept for _, p in self.accounts)


def offline_policy(values: Mapping[str, str], where: str, base: OfflinePolicy = OfflinePolicy()) -> OfflinePolicy:
    """The policy ``values`` give (other keys are ignored), the keys left out taken from ``base``."""
    policy = base
    if "offline" in values:
        mode = values["offline"].strip().lower()
        if mode not in ("refuse", "accept"):
            raise ConfigError(f"{where} offline={values['offline']!r} must be refuse or accept")
        policy = replace(policy, accept=mode == "accept")
    if values.get("offline_loan_days"):
        days = int(number(dict(values), "offline_loan_days", DEFAULT_LOAN_DAYS, where, integer=True, minimum=1))
        if days > MAX_LOAN_DAYS:
            raise ConfigError(f"{where}: offline_loan_days={days} must be at most {MAX_LOAN_DAYS}")
        policy = replace(policy, loan_days=days)
    if values.get("offline_max_checkouts"):
        most = int(number(dict(values), "offline_max_checkouts", DEFAULT_MAX_CHECKOUTS, where, integer=True,
                          minimum=0))
        if most > MAX_CHECKOUTS:
            raise ConfigError(f"{where}: offline_max_checkouts={most} must be at most {MAX_CHECKOUTS}")
        policy = replace(policy, max_checkouts=most)
    for key in ("offline_items", "offline_patrons"):
        if key in values:
            policy = replace(policy, **{key.removeprefix("offline_"): _patterns(values[key], f"{where} {key}")})
    return policy


def _patterns(raw: str, where: str) -> tuple[str, ...]:
    patterns = tuple(p for p in raw.replace(",", " ").split() if p)
    if len(patterns) > MAX_PATTERNS:
        raise ConfigError(f"{where}: {len(patterns)} patterns, at most {MAX_PATTERNS}")
    for p in patterns:
        if p.count("[") != p.count("]"):
            raise ConfigError(f"{where}: pattern {p!r} has an unclosed [ ]; use * ? and [0-9] as in file names")
    return patterns


def offline_config(parser: configparser.ConfigParser) -> OfflineConfig:
    """The offline policies of a config file: ``[upstream]``'s, then each account's."""
    upstream = dict(parser["upstream"]) if parser.has_section("upstream") else {}
    default = offline_policy(upstream, "[upstream]")
    login, password = upstream.get("offline_replay_login", ""), upstream.get("offline_replay_password", "")
    if bool(login) != bool(password):
        raise ConfigError("[upstream] offline_replay_login and offline_replay_password: give both or neither")
    accounts = []
    for section in parser.sections():
        kind, _, name = section.partition(":")
        values = dict(parser[section])
        if kind == "account" and name and OFFLINE_KEYS & set(values):
            accounts.append((name, offline_policy(values, f"[account:{name}]", default)))
    return OfflineConfig(default=default, accounts=tuple(accounts), replay_login=login, replay_password=password)
