"""``sipgateway check-config FILE``: the checks start-up makes, without binding anything;
exit 0 with a summary, 1 with one line per problem (every section's, not only the first)."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from sipgateway.cli import main
from tests.transports.certs_pki import make_pki


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    ini = tmp_path / "gw.ini"
    ini.write_text(text)
    code = main(["check-config", str(ini), *extra])
    out, err = capsys.readouterr()
    return code, out.replace(str(ini), "gw.ini"), err.replace(str(ini), "gw.ini")


def test_a_good_file_gives_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_pki(str(tmp_path / "pki"))
    code, out, err = check(tmp_path, f"""[gateway]
database = sqlite:{tmp_path}/new.sqlite3
demo = yes

[listener:raw]
listen = sip:tcp:6001:interface=127.0.0.1
account = sc1

[listener:tls]
listen = sip:haproxy:tls:6009:privateKey={pki.server.key_path}:certKey={pki.server.cert_path}
cert_accounts = CN=sorter1,O=Library -> k1

[account:k1]
password = secret-k1
institution = MAIN
""", capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "gw.ini: OK",
        "  listener raw: sip:tcp:6001:interface=127.0.0.1 (account sc1)",
        f"  listener tls: sip:haproxy:tls:6009:privateKey={pki.server.key_path}:certKey={pki.server.cert_path} "
        "(1 cert_accounts)",
        "  SC account sections: k1",
        f"  accounts listeners name were looked up in the file and the demo fixtures ({tmp_path}/new.sqlite3 "
        "is created at start-up)",
        f"  database: sqlite:{tmp_path}/new.sqlite3 (demo fixtures when new)",
    ]
    assert "secret-k1" not in out
    assert not (tmp_path / "new.sqlite3").exists()  # nothing created


def test_every_problem_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_pki(str(tmp_path / "pki"))
    code, out, err = check(tmp_path, f"""[gateway]
database = sqlite:{tmp_path}/none.sqlite3
max_connections = many

[listener:raw]
listen = sip:tcp:70000:interface=127.0.0.1

[listener:v6]
listen = sip:tcp6:6003:interface=10.0.0.1

[listener:tls]
listen = sip:tls:6009:privateKey={pki.client.key_path}:certKey={pki.server.cert_path}

[listener:bound]
listen = sip:tcp:6002:account=ghost

[listener:typo]
listen = sip:tcp:6004:idle_timout=3

[account:k1]
password = secret-k1
institution = MAIN
encoding = utf-16
""", capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == "gw.ini: [gateway]: max_connections='many' is not a whole number"
    assert ("gw.ini: listener typo: bad endpoint 'tcp:6004:idle_timout=3': _parseTCP() got an unexpected "
            "keyword argument 'idle_timout'") in lines
    assert "gw.ini: [account:k1]: encoding='utf-16' cannot carry SIP2" in err
    assert "gw.ini: listener raw: port 70000 is out of range (0-65535)\n" in err
    assert "gw.ini: listener v6: interface '10.0.0.1' is not an IPv6 address\n" in err
    assert "gw.ini: listener tls: bad endpoint" in err
    assert (f"gw.ini: database 'sqlite:{tmp_path}/none.sqlite3': {tmp_path}/none.sqlite3 does not exist "
            "(start-up would stop; create it once with --init)\n") in err
    assert ("gw.ini: listener bound: account='ghost' is not an SC account (declare it in an [account:ghost] "
            "section with a password, or create it in the database)\n") in err
    assert len(lines) == 8, lines
    assert "secret-k1" not in err + out and "OK" not in out


def test_accounts_in_the_database_and_nothing_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = sqlite3.connect(tmp_path / "gw.sqlite3")
    db.execute("CREATE TABLE sc_accounts (name TEXT)")
    db.execute("INSERT INTO sc_accounts VALUES ('kiosk1')")
    db.commit()
    db.close()
    with socket.socket() as busy:  # a port in use: only start-up, which binds, can tell
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        text = f"[listener:raw]\nlisten = sip:tcp:{port}:interface=127.0.0.1:account=kiosk1\n"
        code, out, err = check(tmp_path, text, capsys, "--database", f"sqlite:{tmp_path}/gw.sqlite3")
        assert (code, err) == (0, "")
        assert f"looked up in the file and the database sqlite:{tmp_path}/gw.sqlite3 (1 SC accounts)" in out
        code, out, err = check(tmp_path, text, capsys)  # no database: only the file's sections
        assert code == 1 and "account='kiosk1' is not an SC account" in err


def test_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-config", str(tmp_path / "missing.ini")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.splitlines() == [f"{tmp_path}/missing.ini: --config: file '{tmp_path}/missing.ini' does not exist"]
