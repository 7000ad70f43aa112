"""``kill -HUP`` reloads the configuration of the real twistd: a new SC account, a listener's
new idle timeout, a renewed certificate, an added and a removed listener, while a session
that is logged in stays and answers; a bad new file is refused with one log line and the
old configuration stays in force."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
from pathlib import Path

from cryptography import x509

from tests.system.process import GatewayProcess, SIPClient, free_port
from tests.system.test_sighup import wait_logged
from tests.transports.certs_pki import _issue, _name, make_pki

LOGIN = "9300CNsc1|COpass1|CPMAIN|"
RELOADED = "Configuration reloaded from "
REFUSED = "Reload refused: "


def write_config(path: Path, raw: int, tls: int, pki_dir: Path, *, idle: int = 600, extra: str = "",
                 other: int | None = None) -> None:
    text = f"""[gateway]
database = sqlite:gw.sqlite3
demo = yes

[listener:raw]
listen = sip:tcp:{raw}:interface=127.0.0.1
idle_timeout = {idle}

[listener:tls]
listen = sip:tls:{tls}:interface=127.0.0.1:privateKey={pki_dir}/live.key:certKey={pki_dir}/live.pem
"""
    if other is not None:
        text += f"\n[listener:other]\nlisten = sip:tcp:{other}:interface=127.0.0.1\n"
    path.write_text(text + extra)


def served_certificate(port: int, ca: str) -> x509.Certificate:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def closed_within(client: SIPClient, seconds: float) -> bool:
    """True when the gateway closes the connection within ``seconds``."""
    client.sock.settimeout(seconds)
    try:
        return client.sock.recv(100) == b""
    except TimeoutError:
        return False


def refused_connection(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_hup_reloads_accounts_listeners_and_certificates_while_a_session_stays(tmp_path: Path) -> None:
    pki = make_pki(str(tmp_path / "pki"))
    live = tmp_path / "pki"
    shutil.copy(pki.server.key_path, live / "live.key")
    shutil.copy(pki.server.cert_path, live / "live.pem")
    raw, tls, other = free_port(), free_port(), free_port()
    ini = tmp_path / "gw.ini"
    write_config(ini, raw, tls, live)
    gw = GatewayProcess(tmp_path, ["--config", str(ini)], [raw, tls]).start()
    try:
        before = served_certificate(tls, pki.ca.cert_path)
        assert before.serial_number == pki.server.cert.serial_number
        with SIPClient(raw) as kept:
            assert kept.request(LOGIN) == b"941"
            with SIPClient(raw) as c:
                assert c.request("9300CNkiosk9|COnew-secret|CPMAIN|") == b"940"  # no such account yet

            renewed = _issue(str(live), "renewed", _name("localhost", "Library"), pki.ca, server=True)
            shutil.copy(renewed.key_path, live / "live.key")
            shutil.copy(renewed.cert_path, live / "live.pem")
            write_config(ini, raw, tls, live, idle=2, other=other,
                         extra="\n[account:kiosk9]\npassword = new-secret\ninstitution = MAIN\n")
            gw.proc.send_signal(signal.SIGHUP)
            wait_logged(gw.log_path, RELOADED, 1)

            assert kept.request("9900302.00").startswith(b"98")  # the session logged in before stays
            with SIPClient(raw) as c:
                assert c.request("9300CNkiosk9|COnew-secret|CPMAIN|") == b"941"
                assert closed_within(c, 15)  # the listener's new idle timeout: 2 s
            after = served_certificate(tls, pki.ca.cert_path)
            assert after.serial_number == renewed.cert.serial_number
            with SIPClient(other) as c:  # the added listener
                assert c.request(LOGIN) == b"941"
            assert kept.request("9900302.00").startswith(b"98")  # its own idle timeout (600 s) still

            write_config(ini, raw, tls, live, idle=2)  # the added listener removed again
            gw.proc.send_signal(signal.SIGHUP)
            wait_logged(gw.log_path, RELOADED, 2)
            assert refused_connection(other)
            assert kept.request("9900302.00").startswith(b"98")
    finally:
        gw.stop()
    log = gw.log()
    assert "Configuration reloaded from " + str(ini) + ": SC accounts written: kiosk9" in log
    assert "listeners added: other" in log and "listener settings: raw" in log
    assert "TLS certificates renewed: tls (valid until " in log
    assert "listeners removed: other" in log
    assert "new-secret" not in log and "pass1" not in log


def test_a_bad_config_is_refused_with_one_line_and_the_old_stays(tmp_path: Path) -> None:
    pki = make_pki(str(tmp_path / "pki"))
    live = tmp_path / "pki"
    shutil.copy(pki.server.key_path, live / "live.key")
    shutil.copy(pki.server.cert_path, live / "live.pem")
    raw, tls, bound = free_port(), free_port(), free_port()
    ini = tmp_path / "gw.ini"
    write_config(ini, raw, tls, live, extra="\n[account:kiosk9]\npassword = first\ninstitution = MAIN\n")
    gw = GatewayProcess(tmp_path, ["--config", str(ini)], [raw, tls]).start()
    try:
        with SIPClient(raw) as kept:
            assert kept.request(LOGIN) == b"941"
            # a wrong value, and a listener bound to an account that does not exist
            write_config(ini, raw, tls, live, idle=2,
                         extra=f"\n[account:kiosk9]\npassword = second\ninstitution = MAIN\n"
                               f"\n[listener:bound]\nlisten = sip:tcp:{bound}:interface=127.0.0.1:account=nobody\n")
            ini.write_text(ini.read_text().replace("idle_timeout = 2", "idle_timeout = soon"))
            gw.proc.send_signal(signal.SIGHUP)
            wait_logged(gw.log_path, REFUSED, 1)

            ini.write_text(ini.read_text().replace("idle_timeout = soon", "idle_timeout = 2"))
            gw.proc.send_signal(signal.SIGHUP)
            wait_logged(gw.log_path, REFUSED, 2)

            assert kept.request("9900302.00").startswith(b"98")
            with SIPClient(raw) as c:
                assert c.request("9300CNkiosk9|COfirst|CPMAIN|") == b"941"  # the old password stays
                assert not closed_within(c, 3)  # and the old idle timeout (600 s)
            assert refused_connection(bound)  # nothing of the bad file listens
    finally:
        gw.stop()
    refused = [line for line in gw.log().splitlines() if REFUSED in line]
    assert len(refused) == 2, refused
    assert "idle_timeout" in refused[0] and "soon" in refused[0]
    assert "account='nobody' is not an SC account" in refused[1]
    assert refused[1].endswith("; the configuration in force is kept")
    assert "second" not in gw.log() and "first" not in gw.log()
