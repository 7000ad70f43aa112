"""The admin listener of a front gateway (``--acs sip2://...``), the real twistd in front of a
real back gateway: ready while the back answers; once the back is stopped and requests have
opened the front's circuit breaker, ``/readyz`` says 503 with the server and why, and
``/metrics`` says the server is out of service and the gateway offline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.process import SIPClient, free_port
from tests.system.test_admin import WAIT, get, scrape
from tests.system.test_front_gateway import DATE, POOLED_CONFIG, Back, Front


@pytest.fixture
def gateways() -> Iterator[list]:
    running: list = []
    yield running
    for gateway in reversed(running):
        gateway.proc.stop()


def test_readyz_and_the_upstream_figures_follow_the_library_system(tmp_path: Path, gateways: list) -> None:
    back = Back(tmp_path / "back")
    gateways.append(back)
    admin = free_port()
    server = f"127.0.0.1:{back.port}"
    front = Front(tmp_path / "front", [f"sip2://{server}?login=scclient&password=clientpwd&timeout=2"],
                  f"{POOLED_CONFIG}\n[admin]\nlisten = tcp:{admin}:interface=127.0.0.1\n", ports=(admin,))
    gateways.append(front)
    base = f"http://127.0.0.1:{admin}"
    end = time.monotonic() + WAIT
    while (answer := get(base + "/readyz"))[0] != 200:  # until its own database process has opened the file
        assert time.monotonic() < end, answer
        time.sleep(0.05)
    with SIPClient(front.port) as c:
        assert c.request("9300CNkiosk|COkiosk-secret|CPMAIN|") == b"941"
        assert c.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|").startswith(b"121")
        got = scrape(base)
        assert got[("sipgateway_upstream_up", (("server", server),))] == 1
        assert got[("sipgateway_upstream_breaker_open_total", (("server", server),))] == 0
        assert (got[("sipgateway_acs_up", ())], got[("sipgateway_offline", ())]) == (1, 0)
        assert got[("sipgateway_offline_journal_entries", (("state", "pending"),))] == 0
        back.proc.stop()
        end = time.monotonic() + WAIT
        while (answer := get(base + "/readyz"))[0] == 200:  # each request the back cannot take is a failure
            assert time.monotonic() < end, "still ready with the library system stopped"
            c.request(f"17{DATE}AOMAIN|AB200001|AC|")
    assert answer[0] == 503
    reason = answer[2].decode()
    assert reason.startswith(f"the library system does not answer: no library system server is in service "
                             f"({server}: circuit open after 5 failures in a row, the last: "), reason
    assert reason.endswith(")\n") and reason.count("\n") == 1 and "clientpwd" not in reason
    got = scrape(base)
    assert got[("sipgateway_upstream_up", (("server", server),))] == 0
    assert got[("sipgateway_upstream_breaker_open_total", (("server", server),))] == 1
    assert (got[("sipgateway_acs_up", ())], got[("sipgateway_offline", ())]) == (0, 1)
    assert get(base + "/healthz")[::2] == (200, b"ok\n")
