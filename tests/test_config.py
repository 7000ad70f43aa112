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
    assert not config.demo_defaults
    assert config.demo  # no --config and no --database: the default file is the demo library


def test_a_database_named_is_never_the_demo_unless_asked() -> None:
    listen = ["sip:tcp:6001"]
    assert not load(None, listen=listen, database="sqlite:lib.sqlite3").demo
    assert load(None, listen=listen, database="sqlite:lib.sqlite3", demo=True).demo
    config = load(None, database="sqlite:lib.sqlite3", init=True)
    assert config.init and not config.demo
    assert not load(None).init


def test_init_is_a_flag_not_a_config_key(tmp_path: Path) -> None:
    """Left in a config file it would turn a missing database (a wrong path, an unmounted
    disk) into a new empty one at every start: it is a one-off command-line flag."""
    from sipgateway.config import Options

    path = tmp_path / "gw.ini"
    path.write_text("[gateway]\ninit = yes\n")
    with pytest.raises(ConfigError, match=r"\[gateway\] init: unknown key"):
        load(str(path))
    options = Options()
    options.parseOptions(["--init", "--database", "sqlite:lib.sqlite3"])
    assert options.config.init and options.config.database == "sqlite:lib.sqlite3"


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


# -- character sets SIP2 can carry ----------------------------------------------------------

NOT_SIP2_CHARSETS = ["hex", "base64", "rot13", "bz2", "utf-16", "utf-16-le", "utf-32", "utf-7", "utf-8-sig",
                     "shift_jis", "gbk", "big5", "cp037"]
SIP2_CHARSETS = {"ascii": "ascii", "utf-8": "utf-8", "UTF8": "utf-8", "cp850": "cp850", "latin-1": "iso8859-1",
                 "iso-8859-15": "iso8859-15", "cp1252": "cp1252", "cp437": "cp437", "koi8-r": "koi8-r"}


@pytest.mark.parametrize("charset", NOT_SIP2_CHARSETS)
def test_a_charset_sip2_cannot_carry_is_refused_on_a_listener(charset: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(None, listen=[f"sip:tcp:6001:encoding={charset}"])
    assert str(e.value) == (f"--listen: encoding={charset!r} cannot carry SIP2: it must be UTF-8 or an "
                            "ASCII-compatible single-byte charset (ascii, utf-8, cp850, cp1252, latin-1, "
                            "iso-8859-15 ...)")


@pytest.mark.parametrize("charset", NOT_SIP2_CHARSETS)
def test_a_charset_sip2_cannot_carry_is_refused_in_a_section(tmp_path: Path, charset: str) -> None:
    path = tmp_path / "c.ini"
    for text, where in [(f"[listener:raw]\nlisten = sip:tcp:6001\nencoding = {charset}\n", "[listener:raw]"),
                        (f"[account:kiosk]\npassword = x\ninstitution = MAIN\nencoding = {charset}\n",
                         "[account:kiosk]")]:
        path.write_text(text)
        with pytest.raises(ConfigError) as e:
            load(str(path))
        assert str(e.value).startswith(where)
        assert f"encoding={charset!r} cannot carry SIP2: " in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("charset,codec", SIP2_CHARSETS.items())
def test_real_charsets_are_accepted(tmp_path: Path, charset: str, codec: str) -> None:
    path = tmp_path / "c.ini"
    path.write_text(f"[listener:raw]\nlisten = sip:tcp:6001\nencoding = {charset}\n"
                    f"[account:kiosk]\npassword = x\ninstitution = MAIN\nencoding = {charset}\n")
    config = load(str(path))
    assert config.listeners[0].settings.encoding == codec
    assert config.accounts[0].encoding == codec


# -- listen backlog -------------------------------------------------------------------------

def test_backlog_is_a_listener_key_in_the_endpoint_or_the_section(tmp_path: Path) -> None:
    (listener,) = load(None, listen=["sip:tcp:6001:backlog=2048:interface=127.0.0.1"]).listeners
    assert (listener.endpoint, listener.backlog) == ("tcp:6001:interface=127.0.0.1", 2048)
    path = tmp_path / "c.ini"
    path.write_text("[listener:raw]\nlisten = sip:tcp:6001\nbacklog = 300\n"
                    "[listener:telnet]\nlisten = telnet:tcp:6002\n")
    raw, telnet = load(str(path)).listeners
    assert (raw.endpoint, raw.backlog) == ("tcp:6001", 300)
    assert telnet.backlog is None  # the default: see transports.backlog


@pytest.mark.parametrize("listen,message", [
    ("sip:tcp:6001:backlog=lots", "--listen: backlog='lots' is not a whole number"),
    ("sip:tcp:6001:backlog=0", "--listen: backlog='0' must be at least 1"),
    ("sip:tcp:6001:backlog=70000", "--listen: backlog='70000' must be at most 65535"),
    ("sip:serial:/dev/ttyS0:backlog=10", "--listen: backlog= applies only to siptls, ssl, tcp, tcp6, tls, unix "
                                         "endpoints, not serial:"),
])
def test_bad_backlog_names_the_key(listen: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(None, listen=[listen])
    assert str(e.value) == message


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


def test_licences_for_98_gg(tmp_path: Path) -> None:
    """OCLC Wise SIP2+ licences: names joined by ' / ' (or commas), reported in every 98's GG."""
    path = tmp_path / "gw.ini"
    path.write_text("[gateway]\nlicences = LIC_BETAAL / LIC_MAKEN_BOEKINGEN,LIC_VERLENGMOGELIJKHEDEN /\n")
    assert load(str(path)).licences == ("LIC_BETAAL", "LIC_MAKEN_BOEKINGEN", "LIC_VERLENGMOGELIJKHEDEN")
    assert load(None).licences == ()
    path.write_text("[gateway]\nlicences = LIC_BETAAL / pay|ment\n")
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert str(e.value) == ("[gateway] licences='LIC_BETAAL / pay|ment': 'pay|ment' is not a licence name (letters, "
                            "digits and _, joined by ' / ', for example LIC_BETAAL / LIC_VERLENGMOGELIJKHEDEN)")
    path.write_text("[gateway]\nlicences = " + " / ".join(["LIC_VERLENGMOGELIJKHEDEN"] * 11) + "\n")
    with pytest.raises(ConfigError, match=r"\[gateway\] licences=.*longer than the 255 characters a 98's GG"):
        load(str(path))
