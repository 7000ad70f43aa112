"""Configuration: defaults, overrides, per-listener keys, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipgateway.acs.model import ErrorDetection
from sipgateway.config import DEFAULT_LISTENERS, ConfigError, load, parse_listen, split_endpoint

REPO = Path(__file__).resolve().parent.parent


def test_defaults_serve_the_demo_on_loopback() -> None:
    config = load(None)
    assert [f"{li.kind}:{li.endpoint}" for li in config.listeners] == list(DEFAULT_LISTENERS)
    assert config.database == "sqlite:sipgateway.sqlite3"
    assert config.demo and config.demo_defaults


def test_listen_overrides_and_keys_are_taken_out_of_the_endpoint() -> None:
    config = load(None, listen=["sip:serial:/dev/ttyUSB0:baudrate=9600:account=sc1:encoding=cp850"])
    (listener,) = config.listeners
    assert listener.endpoint == "serial:/dev/ttyUSB0:baudrate=9600"
    assert listener.settings.account == "sc1"
    assert listener.settings.encoding == "cp850"
    assert listener.settings.idle_timeout == 0  # serial lines are never idle-closed
    assert not config.demo_defaults and not config.demo


def test_escaped_colons_survive() -> None:
    assert split_endpoint(r"tcp:6001:interface=\:\:1") == ["tcp", "6001", r"interface=\:\:1"]
    assert parse_listen(r"sip:tcp:6001:interface=\:\:1:checksum=required").endpoint == r"tcp:6001:interface=\:\:1"


def test_the_example_config_loads() -> None:
    config = load(str(REPO / "etc" / "sipgateway.ini"))
    assert {li.settings.name for li in config.listeners} == {"raw", "telnet"}
    assert config.max_login_failures == 10


@pytest.mark.parametrize("text,message", [
    ("[gateway]\nfoo = 1\n", "[gateway] foo: unknown key"),
    ("[gateway]\nacs_timeout = soon\n", "[gateway]: acs_timeout='soon' is not a number"),
    ("[gateway]\ncurrency = dollars\n", "[gateway] currency='dollars' must be a 3-letter ISO 4217 code"),
    ("[listener:a]\nlisten = ftp:tcp:21\n", "[listener:a] listen: 'ftp:tcp:21' is not KIND:ENDPOINT"),
    ("[listener:a]\nlisten = sip:tcp:6001\nchecksum = maybe\n", "checksum='maybe' must be auto, required or off"),
    ("[listener:a]\nlisten = sip:tcp:6001\nencoding = klingon\n", "encoding='klingon' is not a known character set"),
    ("[listener:a]\nlisten = sip:tcp:6001\nmax_line = 10\n", "max_line='10' must be at least 64"),
    ("[listener:a]\nport = 6001\n", "[listener:a] port: unknown key"),
    ("[account:k]\ninstitution = MAIN\n", "[account:k] password: missing"),
    ("[listener:t]\nlisten = telnet:tcp:6002\naccount = sc1\n", "account= cannot be used on a telnet listener"),
    ("[whatever]\n", "[whatever]: unknown section"),
    ("[gateway]\ndatabase = postgres://x\n", "'postgres://x' is not supported; use sqlite:PATH"),
], ids=lambda v: v[:24] if isinstance(v, str) else v)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert message in str(e.value)


def test_accounts_and_cert_bindings(tmp_path: Path) -> None:
    path = tmp_path / "c.ini"
    path.write_text("[listener:tls]\nlisten = sip:tls:6009:privateKey=k.pem:certKey=c.pem\n"
                    "cert_accounts =\n    CN=sorter1,O=Lib -> sc1\nchecksum = required\n"
                    "[account:kiosk]\npassword = s3cret\ninstitution = MAIN\nencoding = ascii\n")
    config = load(str(path))
    (listener,) = config.listeners
    assert listener.settings.cert_accounts == {"CN=sorter1,O=Lib": "sc1"}
    assert listener.settings.error_detection is ErrorDetection.REQUIRED
    (account,) = config.accounts
    assert account.encoding == "ascii" and "s3cret" not in repr(account)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config: file .*nope.ini.* does not exist"):
        load(str(tmp_path / "nope.ini"))


def test_account_idle_timeout_alone_is_a_setting_for_an_existing_account(tmp_path: Path) -> None:
    path = tmp_path / "c.ini"
    path.write_text("[account:sc1]\nidle_timeout = 30\n[account:kiosk]\npassword = x\ninstitution = MAIN\n")
    config = load(str(path))
    settings_only, full = config.accounts
    assert (settings_only.name, settings_only.password, settings_only.idle_timeout) == ("sc1", "", 30.0)
    assert full.idle_timeout is None


def test_lockout_and_pin_guard_keys(tmp_path: Path) -> None:
    defaults = load(None)
    assert (defaults.max_login_failures, defaults.max_login_failures_per_address,
            defaults.max_login_failures_per_account, defaults.lockout_seconds) == (10, 30, 100, 3600.0)
    assert (defaults.max_pin_failures, defaults.max_pin_failures_per_terminal,
            defaults.pin_lockout_seconds) == (10, 30, 3600.0)
    ini = tmp_path / "g.ini"
    ini.write_text("[gateway]\nmax_login_failures_per_address = 50\nmax_login_failures_per_account = 0\n"
                   "max_pin_failures = 5\nmax_pin_failures_per_terminal = 20\npin_lockout_seconds = 900\n")
    config = load(str(ini))
    assert (config.max_login_failures_per_address, config.max_login_failures_per_account) == (50, 0)
    assert (config.max_pin_failures, config.max_pin_failures_per_terminal, config.pin_lockout_seconds) == (5, 20, 900)
    ini.write_text("[gateway]\nmax_pin_failures = ten\n")
    with pytest.raises(ConfigError, match=r"\[gateway\]: max_pin_failures='ten' is not a whole number"):
        load(str(ini))
    ini.write_text("[gateway]\npin_lockout_seconds = -1\n")
    with pytest.raises(ConfigError, match="pin_lockout_seconds='-1' must be at least 0"):
        load(str(ini))
