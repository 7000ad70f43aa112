"""The admin listener's configuration: ``--admin`` and ``[admin]``, off by default, and
protected (client certificates or a password over TLS) off the loopback interface."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python import usage

from sipgateway.config import ConfigError, load
from sipgateway.config.admin import AdminConfig, admin_section
from sipgateway.config.options import Options


def test_off_by_default() -> None:
    assert load(None).admin is None
    assert admin_section({}) is None


def test_admin_option_and_section(tmp_path: Path) -> None:
    assert load(None, admin="tcp:6080:interface=127.0.0.1").admin == AdminConfig("tcp:6080:interface=127.0.0.1")
    path = tmp_path / "gw.ini"
    path.write_text("[admin]\nlisten = tcp6:6080:interface=\\:\\:1\n", encoding="utf-8")
    assert load(str(path)).admin == AdminConfig(r"tcp6:6080:interface=\:\:1")
    # the option replaces the section's endpoint
    assert load(str(path), admin="unix:/run/sipgateway/admin.sock").admin == AdminConfig(
        "unix:/run/sipgateway/admin.sock")


def test_the_command_line_option_reaches_the_config() -> None:
    options = Options()
    options.parseOptions(["--admin", "tcp:6080:interface=127.0.0.1"])
    assert options.config.admin == AdminConfig("tcp:6080:interface=127.0.0.1")


@pytest.mark.parametrize("endpoint", ["tcp:6080:interface=127.0.0.1", "tcp:6080:127.0.0.2",
                                      r"tcp6:6080:interface=\:\:1", "tcp:6080:interface=localhost",
                                      "unix:/run/admin.sock"])
def test_loopback_and_unix_sockets_need_no_protection(endpoint: str) -> None:
    assert admin_section({"listen": endpoint}) == AdminConfig(endpoint)


def test_client_certificates_or_a_password_over_tls_protect_every_interface() -> None:
    certs = "tls:6080:privateKey=k.pem:certKey=c.pem:caCerts=ca.pem"
    assert admin_section({"listen": certs}) == AdminConfig(certs)
    tls = "tls:6080:privateKey=k.pem:certKey=c.pem"
    config = admin_section({"listen": tls, "user": "prometheus", "password": "s3cret"})
    assert config == AdminConfig(tls, "prometheus", "s3cret")
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(("values", "message"), [
    ({"listen": "tcp:6080"}, "[admin] listen = tcp:6080: is not on the loopback interface"),
    ({"listen": "tcp:6080:interface=0.0.0.0"}, "use tls:PORT:privateKey=KEY:certKey=CERT:caCerts=FILE"),
    ({"listen": "tcp:6080:interface=10.0.0.5", "user": "u", "password": "secret-pw"},
     "would send the password in clear text"),
    ({"listen": "tls:6080:privateKey=k.pem:certKey=c.pem"}, "add caCerts=FILE"),
    ({"listen": "tcp:6080:interface=127.0.0.1", "user": "u"}, "[admin] password: missing"),
    ({"listen": "tcp:6080:interface=127.0.0.1", "password": "secret-pw"}, "[admin] user: missing"),
    ({"listen": "tcp:6080:interface=127.0.0.1", "user": "a:b", "password": "secret-pw"},
     "[admin] user: must not contain ':'"),
    ({"user": "u", "password": "secret-pw"}, "[admin] listen: missing"),
    ({"listen": "tcp:6080:interface=127.0.0.1", "port": "6080"}, "[admin] port: unknown key"),
])
def test_errors_name_the_key_and_never_the_password(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        admin_section(values)
    assert message in str(e.value)
    assert "secret-pw" not in str(e.value)


def test_the_option_is_named_when_it_is_the_unprotected_one() -> None:
    with pytest.raises(usage.UsageError, match=r"^--admin = tcp:6080: is not on the loopback interface"):
        Options().parseOptions(["--admin", "tcp:6080"])


def test_an_unknown_section_error_lists_admin(tmp_path: Path) -> None:
    path = tmp_path / "gw.ini"
    path.write_text("[admn]\nlisten = tcp:6080\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[admn\]: unknown section; .* or \[admin\]"):
        load(str(path))
