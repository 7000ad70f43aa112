"""Pass-through mode: a device's own upstream connection, opened on its login, answering its
93 with the upstream's 94, re-logging in after a drop, closed when asked."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.upstream.dedicated import open_dedicated
from sipgateway.acs.upstream.errors import LoginRefused, Unavailable
from sipgateway.acs.upstream.url import parse_url
from tests.upstream.fakes import Behaviour, FakeUpstream, MemoryEndpoint
from tests.upstream.helpers import CHECKIN_FIELDS, CHECKIN_FIXED

LOGIN_FIXED = {"uid_algorithm": "0", "pwd_algorithm": "0"}


def device_login(user: str = "sorter1", password: str = "pw1") -> tuple[dict, dict]:
    return LOGIN_FIXED, {"CN": user, "CO": password, "CP": "SORTER"}


class DedicatedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()

    def open(self, login=None, behaviour: Behaviour | None = None, url: str = "sip2://ils:6001?timeout=5"):
        self.fake = FakeUpstream(behaviour, self.clock)
        self.endpoint = MemoryEndpoint(self.fake)
        self.outcomes: list = []
        d = open_dedicated(parse_url(url), self.clock, self.endpoint, login or device_login(),
                           on_outcome=[lambda ok, why: self.outcomes.append(ok)])
        self.endpoint.flush()
        return d

    def test_device_login_is_forwarded_and_the_94_reported(self):
        dedicated = self.successResultOf(self.open())
        self.addCleanup(dedicated.close)
        self.assertTrue(dedicated.logged_in)
        self.assertEqual(dedicated.login_reply.fixed, {"ok": "1"})
        login = self.fake.received[0]
        self.assertEqual((login.code, login.get("CN"), login.get("CO"), login.get("CP")),
                         ("93", "sorter1", "pw1", "SORTER"))
        d = dedicated.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        self.endpoint.flush()
        self.assertEqual(self.successResultOf(d).code, "10")
        self.assertEqual(len(self.fake.connections), 1)

    def test_refused_login_is_reported_and_the_connection_closed(self):
        dedicated = self.successResultOf(self.open(device_login(password="wrong")))
        self.endpoint.flush()
        self.assertFalse(dedicated.logged_in)
        self.assertEqual(dedicated.login_reply.fixed, {"ok": "0"})
        self.assertEqual(self.endpoint.pumps, [])  # closed
        self.failureResultOf(dedicated.request("09", CHECKIN_FIXED, CHECKIN_FIELDS), LoginRefused)

    def test_a_close_on_the_login_is_a_refusal_without_a_94(self):
        dedicated = self.successResultOf(self.open(device_login(password="wrong"), Behaviour(profile="evergreen"),
                                                   url="sip2://ils:6001?profile=evergreen"))
        self.assertFalse(dedicated.logged_in)
        self.assertIsNone(dedicated.login_reply)

    def test_unreachable_upstream(self):
        self.fake = FakeUpstream(None, self.clock)
        endpoint = MemoryEndpoint(self.fake)
        endpoint.refuse = True
        d = open_dedicated(parse_url("sip2://ils:6001"), self.clock, endpoint, device_login())
        self.assertIn("cannot connect", str(self.failureResultOf(d, Unavailable).value))

    def test_after_a_drop_the_next_request_logs_in_again_with_the_same_93(self):
        dedicated = self.successResultOf(self.open(behaviour=Behaviour(drop_on={"17"})))
        self.addCleanup(dedicated.close)
        d = dedicated.request("17", {"transaction_date": "20240506    103000"}, {"AO": "MAIN", "AB": "it1"})
        self.endpoint.flush()
        self.failureResultOf(d)
        d = dedicated.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        self.endpoint.flush()
        self.successResultOf(d)
        logins = [m for m in self.fake.received if m.code == "93"]
        self.assertEqual([(m.get("CN"), m.get("CO")) for m in logins], [("sorter1", "pw1")] * 2)
        self.assertEqual(len(self.fake.connections), 2)
        self.assertTrue(dedicated.logged_in)

    def test_close(self):
        dedicated = self.successResultOf(self.open())
        dedicated.close()
        self.endpoint.flush()
        self.assertEqual(self.endpoint.pumps, [])
        self.failureResultOf(dedicated.request("09", CHECKIN_FIXED, CHECKIN_FIELDS), Unavailable)

    def test_outcomes_reach_the_breaker_hook(self):
        dedicated = self.successResultOf(self.open(behaviour=Behaviour(silent_on={"09"})))
        self.addCleanup(dedicated.close)
        d = dedicated.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        self.endpoint.flush()
        self.clock.advance(5)
        self.failureResultOf(d)
        self.assertEqual(self.outcomes, [False])
