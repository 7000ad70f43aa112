"""``--acs`` and ``[upstream]``: where circulation goes; the accounts' upstream credentials;
start-up of the forwarding backend.  Errors name the option or key and never show a password."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from sipgateway.acs.backends import open_backend
from sipgateway.config import ConfigError, Options, load
from sipgateway.forwarding import ForwardingBackend


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gw.ini"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_embedded_is_the_default_and_can_be_named() -> None:
    assert load(None).upstreams == ()
    assert load(None, acs=["embedded"]).upstreams == ()


def test_acs_urls_in_failover_order_from_the_command_line() -> None:
    options = Options()
    options.parseOptions(["--acs", "sip2://ils1:6001?login=gw&password=s3cret&profile=koha",
                          "--acs", "sip2s://ils2.example.org:6002?login=gw&password=s3cret"])
    first, second = options.config.upstreams
    assert (first.server, first.tls, first.profile, first.terminator) == ("ils1:6001", False, "koha", "CRLF")
    assert (second.server, second.tls, second.login) == ("ils2.example.org:6002", True, "gw")


def test_the_upstream_section_gives_servers_and_default_keys_the_command_line_keeps(tmp_path: Path) -> None:
    path = write(tmp_path, """\
[upstream]
servers = sip2://ils1:6001, sip2://ils2:6001?profile=generic
profile = evergreen
login = gw
password = s3cret
""")
    one, two = load(path).upstreams
    assert (one.profile, one.login, one.password, two.profile) == ("evergreen", "gw", "s3cret", "generic")
    (only,) = load(path, acs=["sip2://ils3:6001"]).upstreams  # --acs replaces servers, keeps the defaults
    assert (only.server, only.profile, only.login) == ("ils3:6001", "evergreen", "gw")


@pytest.mark.parametrize(("acs", "message"), [
    (["embedded", "sip2://a:1"], "--acs: embedded cannot be combined"),
    (["sip2://a:1?login=gw&password=x", "sip2://b:1"], "--acs: either every server has login="),
    (["http://a:1"], "--acs: http://a:1: an upstream is sip2://HOST:PORT"),
    (["sip2://a:1?password=s3cret"], "a password needs login="),
    (["sip2://a:1?login=gw&password=s3cret&pool=0"], "pool='0' must be between 1 and 64"),
    (["sip2://a:1", "sip2://a:1"], "a:1 is listed twice"),
])
def test_bad_acs_values_name_the_option_and_hide_the_password(acs: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")) as e:
        load(None, acs=acs)
    assert "s3cret" not in str(e.value)


def test_the_database_cannot_be_a_library_systems_server() -> None:
    with pytest.raises(ConfigError, match="--database/database: 'sip2://a:1' is not supported; use sqlite:PATH"):
        load(None, database="sip2://a:1")


@pytest.mark.parametrize(("section", "message"), [
    ("[upstream]\nprofile = koha\n", r"\[upstream\] servers: missing"),
    ("[upstream]\nservers = sip2://a:1\nfoo = 1\n", r"\[upstream\] foo: unknown key"),
    ("[upstream]\nservers = sip2://a:1\nprofile = sirsi\n", "profile='sirsi' is not one of"),
])
def test_bad_upstream_sections_name_the_key(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, section))


def test_account_upstream_credentials_from_the_file_or_a_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n", encoding="utf-8")
    config = load(write(tmp_path, f"""\
[account:sorter]
password = pw
institution = MAIN
upstream_login = sorter-1
upstream_password = s3cret

[account:kiosk]
upstream_login = kiosk-1
upstream_password_file = {secret}
"""))
    sorter, kiosk = config.accounts
    assert (sorter.settings.upstream_login, sorter.settings.upstream_password) == ("sorter-1", "s3cret")
    assert (kiosk.settings.upstream_login, kiosk.settings.upstream_password) == ("kiosk-1", "from-file")
    assert "s3cret" not in repr(sorter) and "s3cret" not in repr(sorter.settings)


@pytest.mark.parametrize(("keys", "message"), [
    ("upstream_password = s3cret", r"\[account:a\] upstream_login: missing"),
    ("upstream_login = x", r"\[account:a\] upstream_password: missing"),
    ("upstream_login = x\nupstream_password = s3cret\nupstream_password_file = /f",
     "upstream_password or upstream_password_file, not both"),
    ("upstream_login = x\nupstream_password_file = /nonexistent/s3cret",
     r"\[account:a\] upstream_password_file='/nonexistent/s3cret' cannot be read"),
    ("upstream_login = x\nupstream_password = a|s3cret", "upstream_password: contains '|'"),
])
def test_bad_account_upstream_credentials_name_the_key(tmp_path: Path, keys: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        load(write(tmp_path, f"[account:a]\n{keys}\n"))
    assert "a|s3cret" not in str(e.value)


def test_forwarding_opens_the_gateways_own_database_for_its_accounts(tmp_path: Path) -> None:
    path = write(tmp_path, """\
[account:kiosk]
password = pw
institution = MAIN
""")
    config = load(path, database=f"sqlite:{tmp_path / 'front.sqlite3'}", init=True,
                  acs=["sip2://127.0.0.1:1?login=gw&password=s3cret"])
    backend = open_backend(config, MemoryReactorClock(), (None, None))
    try:
        assert isinstance(backend, ForwardingBackend)
        assert backend.acs.pooled and backend.acs.configs == config.upstreams
        assert backend.accounts.account_names() == {"kiosk"}
    finally:
        backend.accounts.close()


def test_pass_through_refuses_a_bound_account_without_upstream_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, """\
[listener:sorter]
listen = sip:tcp:6001:interface=127.0.0.1:account=sorter

[account:sorter]
password = pw
institution = MAIN
""")
    config = load(path, database=f"sqlite:{tmp_path / 'front.sqlite3'}", init=True, acs=["sip2://127.0.0.1:1"])
    with pytest.raises(ConfigError, match=r"listener sorter: account 'sorter' .* give \[account:sorter\] "
                                          "upstream_login and upstream_password"):
        open_backend(config, MemoryReactorClock(), (None, None))
    assert not (tmp_path / "front.sqlite3").exists()  # refused before anything was made
