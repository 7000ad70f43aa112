"""Reloading the SC accounts: ``[account:NAME]`` sections and the accounts listeners name.

New and changed sections are written to the database in one transaction (the password
hashed as at start-up); sections that did not change are not written again (a password
changed meanwhile with another tool stays).  A section that was removed leaves its
account in the database, as a restart would: a reload does what a restart with the new
file would do, and the config never disables accounts.  The settings the database does not
hold (``idle_timeout``, ``terminator``, ``checked_in_ok``) are the gateway's and apply to
every login from then on.  Sessions logged in keep what they logged in with.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.defer import Deferred

from sipgateway.config import AccountConfig, Config, ConfigError
from sipgateway.reload.machinery import Change, Running
from sipgateway.settings import AccountSettings
from sipgateway.startup import account_row, listener_account_problems


def account_tables(accounts: Iterable[AccountConfig]) -> tuple[dict[str, float], dict[str, AccountSettings]]:
    """The gateway's per-account idle timeouts and settings (``Gateway.idle_timeouts``,
    ``Gateway.account_settings``) from the config's accounts."""
    accounts = tuple(accounts)
    return ({a.name: a.idle_timeout for a in accounts if a.idle_timeout is not None},
            {a.name: a.settings for a in accounts})


async def prepare(running: Running, new: Config) -> Change | None:
    before = {a.name: a for a in running.config.accounts}
    written = [a for a in new.accounts if a.password and before.get(a.name) != a]
    keeper = running.gateway.accounts
    declared = {a.name for a in new.accounts if a.password}
    if hasattr(keeper, "known_accounts"):
        known = set(await keeper.known_accounts()) | declared
    else:  # a provider that cannot list its accounts: only the config's are known
        known = declared | set(before)
    problems = listener_account_problems(new, known)
    if written and not hasattr(keeper, "write_accounts"):
        problems.append(f"[account:{written[0].name}]: the SC accounts of this backend cannot be written "
                        "while it runs; restart the gateway to apply the change")
    if problems:
        raise ConfigError("; ".join(problems))
    idle_timeouts, settings = account_tables(new.accounts)
    gateway = running.gateway
    removed = sorted(set(before) - {a.name for a in new.accounts})

    def apply() -> Deferred | None:
        def in_force(_: object = None) -> None:
            gateway.idle_timeouts, gateway.account_settings = idle_timeouts, settings
        if not written:
            in_force()
            return None
        return keeper.write_accounts([account_row(a) for a in written]).addCallback(in_force)

    said = []
    if written:
        said.append("SC accounts written: " + ", ".join(a.name for a in written))
    if removed:
        said.append("no longer in the config (kept in the database): " + ", ".join(removed))
    if gateway.idle_timeouts != idle_timeouts or gateway.account_settings != settings:
        changed = sorted(name for name in set(settings) | set(gateway.account_settings)
                         if settings.get(name) != gateway.account_settings.get(name)
                         or idle_timeouts.get(name) != gateway.idle_timeouts.get(name))
        said.append("account settings: " + ", ".join(changed))
    return Change("; ".join(said), apply)
