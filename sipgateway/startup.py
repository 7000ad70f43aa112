"""The embedded library system as the gateway's backend (``sqlite:`` in acs/backends.py).

``open_embedded`` does the start-up work, before twistd starts anything: open the database
(creating it only when asked) as the user the gateway will run as, write the config's SC
accounts, check that every account a listener names exists, and note what to warn about.
``EmbeddedBackend`` is the service that then runs it: the database process starts with
the other services (after twistd has daemonized), what start-up found is logged once
logging runs, and the database process stops with the gateway."""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.application.service import Service
from twisted.logger import Logger
from zope.interface import implementer

from sipgateway.acs.backends import BackendUnavailable, IBackend
from sipgateway.acs.postgresql.target import remember
from sipgateway.acs.sqlite import ACSUnavailable, SQLiteACS, health, open_sqlite_acs
from sipgateway.config import AccountConfig, Config, ConfigError
from sipgateway.privileges import RunAs, acting_as, check_can_run

log = Logger()


@dataclass
class Findings:
    """What start-up saw in the database, logged when the services start."""

    path: str
    seeded: bool = False
    #: demo SC accounts that still have their published passwords
    demo_accounts: list[str] = field(default_factory=list)
    #: "SC accounts", "patrons", "items": what the library has none of
    missing: list[str] = field(default_factory=list)


def open_database(config: Config, reactor, run_as: RunAs = (None, None)) -> tuple[SQLiteACS, Findings]:
    """The ACS, ready to ``start``; every problem is a ``StartupError`` with one line."""
    uid, gid = run_as
    remember(config.database, config.database_password)  # a PostgreSQL URL's password, kept apart
    with acting_as(uid, gid):
        check_can_run(uid)
        acs = open_sqlite_acs(config.database, reactor, demo=config.demo, init=config.init,
                              currency=config.currency, timeout=config.acs_timeout)
        try:
            _ensure_accounts(acs, config)
            check_listener_accounts(config, acs.account_names())
            findings = Findings(path=acs.path, seeded=acs.seeded, demo_accounts=acs.demo_credentials(),
                                missing=acs.missing_contents())
        except BaseException:
            acs.close()
            raise
    return acs, findings


def _ensure_accounts(acs: SQLiteACS, config: Config) -> None:
    for account in config.accounts:
        if not account.password:
            continue  # only settings for an account kept in the database
        try:
            acs.ensure_account(**account_row(account))
        except ValueError as e:
            raise ConfigError(f"[account:{account.name}]: {e}") from None


def account_row(account: AccountConfig) -> dict[str, str]:
    """What the database keeps of an ``[account:NAME]`` section (``ensure_account``'s arguments)."""
    return {"name": account.name, "password": account.password, "institution": account.institution,
            "encoding": account.encoding, "error_detection": account.error_detection.value,
            "library_name": account.library_name, "terminal_location": account.terminal_location}


def check_listener_accounts(config: Config, known: set[str]) -> None:
    """Every ``account`` and ``cert_accounts`` account must exist: a device bound to a
    misspelt one could never log in, and nothing else would say why."""
    problems = listener_account_problems(config, known)
    if problems:
        raise ConfigError(problems[0])


def listener_account_problems(config: Config, known: set[str]) -> list[str]:
    """One line per account a listener names (``account``, ``cert_accounts``) that is not in ``known``."""
    hint = "declare it in an [account:{name}] section with a password, or create it in the database"
    problems = []
    for listener in config.listeners:
        settings = listener.settings
        if settings.account and settings.account not in known:
            problems.append(f"listener {settings.name}: account={settings.account!r} is not an SC account "
                            f"({hint.format(name=settings.account)})")
        for subject, name in settings.cert_accounts.items():
            if name not in known:
                problems.append(f"listener {settings.name}: cert_accounts: {subject} -> {name!r}: "
                                f"{name!r} is not an SC account ({hint.format(name=name)})")
    return problems


def open_embedded(config: Config, reactor, run_as: RunAs = (None, None)) -> EmbeddedBackend:
    """The backend of ``--database sqlite:PATH``: its SQLite ACS keeps the SC accounts and
    the failed-attempt counters too."""
    try:
        acs, findings = open_database(config, reactor, run_as)
    except ACSUnavailable as e:
        raise BackendUnavailable(str(e)) from None
    return EmbeddedBackend(acs, config, findings)


@implementer(IBackend)
class EmbeddedBackend(Service):
    """Runs the SQLite ACS that ``open_embedded`` opened."""

    def __init__(self, acs: SQLiteACS, config: Config, findings: Findings) -> None:
        self.acs = self.accounts = acs
        self.attempts = acs.attempt_store()
        #: where the usage figures go (sipgateway/usagefigures.py)
        self.usage_store = acs.record_usage
        self.config = config
        self.findings = findings

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        self.acs.start()
        self._report()

    def stopService(self):  # noqa: N802 - Twisted's name
        super().stopService()
        return self.acs.close()

    def unready(self) -> str | None:
        """Why it cannot serve now, in one line (the admin listener's /readyz), or None."""
        return health.problem(self.acs)

    def collectors(self) -> list:
        """Its figures for the admin listener's /metrics: the database process's batches."""
        from sipgateway.acs.sqlite.metrics import DatabaseCollector  # prometheus_client, only with the admin listener

        return [DatabaseCollector(self.acs.runner)]

    def _report(self) -> None:
        found = self.findings
        if found.seeded:
            log.info("Seeded the demo library into {path}", path=found.path)
        if found.demo_accounts:
            where = ""
            if self.config.demo_defaults:
                where = " on " + ", ".join(f"{li.kind}:{li.endpoint}" for li in self.config.listeners)
            log.warn("DEMO credentials are active in {path}{where}: the SC accounts {accounts} still have the "
                     "passwords published in README.rst (and the demo patrons their PINs). Do not expose this "
                     "gateway; for real use start from a new database (--init) or change those passwords.",
                     path=found.path, where=where, accounts=", ".join(found.demo_accounts))
        if found.missing:
            log.warn("The database {path} has {missing}: {consequence}", path=found.path,
                     missing=_and(found.missing), consequence=_consequence(found.missing))


def _and(names: list[str]) -> str:
    """["SC accounts", "items"] → "no SC accounts and no items"."""
    nos = [f"no {name}" for name in names]
    return nos[0] if len(nos) == 1 else ", ".join(nos[:-1]) + " and " + nos[-1]


def _consequence(missing: list[str]) -> str:
    what = []
    if "SC accounts" in missing:
        what.append("no device can log in (add [account:NAME] sections to the config)")
    if "patrons" in missing:
        what.append("every patron is unknown")
    if "items" in missing:
        what.append("every item is unknown")
    return "; ".join(what)
