"""Pass-through mode in the session (sipgateway/passthrough.py): a device's 93 goes to the
library system and its 94 answers the device, under the gateway's lockout; a device bound
to an account logs in with the account's upstream credentials; 98 reports the library
system's health; the device's upstream connection closes with its own.  A Clock and fake
upstream servers over iosim; the bytes the device gets are asserted."""

from __future__ import annotations

from datetime import datetime

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.upstream.backend import UpstreamACS
from sipgateway.acs.upstream.url import parse_url
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout, MemoryAttempts
from sipgateway.passthrough import RETRY
from sipgateway.pinguard import PinGuard, PinGuardedACS
from sipgateway.session import Session
from sipgateway.settings import AccountSettings, ListenerSettings
from sipgateway.states import State
from tests.fakes import FakeACS
from tests.upstream.fakes import Behaviour
from tests.upstream.helpers import LogCapture
from tests.upstream.test_backend import Upstreams

T0 = datetime(2024, 5, 6, 10, 30).timestamp()
DATE = "20240506    103000"


class PassThroughSessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.logs = LogCapture(self)
        self.up = Upstreams(self.clock, Behaviour())
        self.server = self.up.servers[0]
        self.backend = UpstreamACS([parse_url("sip2://ils:6001?timeout=5&institution=MAIN")], self.clock,
                                   endpoint_for=self.up.endpoint_for, probe_interval=5.0)
        self.backend.startService()
        self.addCleanup(self.backend.stopService)
        self.own_accounts = FakeACS()  # the gateway's own database: sc1 only
        self.gateway = Gateway(acs=PinGuardedACS(self.backend, PinGuard(self.clock, MemoryAttempts())),
                               accounts=self.own_accounts, reactor=self.clock, acs_timeout=5.0,
                               lockout=Lockout(self.clock, MemoryAttempts(), max_failures=2),
                               account_settings={"sc1": AccountSettings(upstream_login="sorter1",
                                                                        upstream_password="pw1")})
        self.out: list[bytes] = []

    def session(self, peer: str = "dev 127.0.0.1:5000") -> Session:
        return Session(self.gateway, ListenerSettings(name="test"), self.out.append, lambda: None, peer)

    def send(self, session: Session, line: str) -> bytes:
        before = len(self.out)
        session.line_received(line.encode())
        self.up.flush()
        self.assertEqual(len(self.out), before + 1, self.out[before:])
        return self.out[-1].rstrip(b"\r")

    def test_the_devices_93_is_forwarded_and_the_library_systems_94_answers_it(self):
        s = self.session()
        self.assertEqual(self.send(s, "9300CNsorter1|COpw1|CPS1|"), b"941")
        login = [msg for msg in self.server.received if msg.code == "93"][-1]
        self.assertEqual((login.get("CN"), login.get("CO"), login.get("CP")), ("sorter1", "pw1", "S1"))
        self.assertEqual(s.account.name, "sorter1")
        self.server.library.loans["it2"] = ("p1", datetime(2024, 5, 27))
        reply = self.send(s, f"09N{DATE}{DATE}APS1|AOMAIN|ABit2|AC|")
        self.assertTrue(reply.startswith(b"101"), reply)
        self.assertEqual(self.server.library.loans, {})  # done by the library system
        self.assertNotIn("pw1", self.logs.text())

    def test_a_refusal_by_the_library_system_counts_against_the_lockout(self):
        s = self.session()
        self.assertEqual(self.send(s, "9300CNsorter1|COwrong|CPS1|"), b"940")
        self.assertEqual(self.send(s, "9300CNsorter1|COwrong|CPS1|"), b"940")
        asked = len([msg for msg in self.server.received if msg.code == "93"])
        self.assertEqual(self.send(s, "9300CNsorter1|COpw1|CPS1|"), b"940")  # locked: not even asked
        self.assertEqual(len([msg for msg in self.server.received if msg.code == "93"]), asked)
        self.assertIn("locked out", self.logs.text())
        self.assertIsNone(s.account)

    def test_a_library_system_that_cannot_be_reached_refuses_the_login_without_counting_it(self):
        self.up.endpoints[0].refuse = True
        s = self.session()
        for _ in range(3):
            self.assertEqual(self.send(s, "9300CNsorter1|COpw1|CPS1|"), b"940")
        self.assertIn("93 for 'sorter1' could not be forwarded to the library system", self.logs.text())
        self.assertNotIn("locked out", self.logs.text())
        self.up.endpoints[0].refuse = False
        self.assertEqual(self.send(s, "9300CNsorter1|COpw1|CPS1|"), b"941")

    def test_98_reports_the_library_systems_health(self):
        s = self.session()
        self.assertEqual(self.send(s, "9300CNsorter1|COpw1|CPS1|"), b"941")
        self.assertTrue(self.send(s, "9900302.00").startswith(b"98Y"))
        for member in self.backend.group.members:  # every server out of service
            for _ in range(10):
                member.breaker.record(False, "test")
        self.clock.advance(10)
        offline = self.send(s, "9900302.00")
        self.assertTrue(offline.startswith(b"98N"), offline)
        self.assertIn(b"AFThe library system is offline|", offline)

    def test_a_bound_device_logs_in_upstream_with_its_accounts_credentials(self):
        s = self.session()
        s.bind("sc1", "listener setting 'account'")
        self.up.flush()
        self.assertIs(s.state, State.READY)
        login = [msg for msg in self.server.received if msg.code == "93"][-1]
        self.assertEqual((login.get("CN"), login.get("CO")), ("sorter1", "pw1"))
        self.server.library.loans["it2"] = ("p1", datetime(2024, 5, 27))
        self.assertTrue(self.send(s, f"09N{DATE}{DATE}APS1|AOMAIN|ABit2|AC|").startswith(b"101"))
        self.assertNotIn("pw1", self.logs.text())

    def test_a_bound_device_waits_while_the_library_system_is_away_and_logs_in_when_it_is_back(self):
        self.up.endpoints[0].refuse = True
        s = self.session()
        s.bind("sc1", "listener setting 'account'")
        self.up.flush()
        self.assertIs(s.state, State.BINDING)
        s.line_received(b"9900302.00")  # waits for the binding
        self.assertEqual(self.out, [])
        self.assertIn("could not log in to the library system", self.logs.text())
        self.up.endpoints[0].refuse = False
        self.clock.advance(RETRY[0])
        self.up.flush()
        self.assertIs(s.state, State.READY)
        self.assertTrue(self.out[-1].startswith(b"98Y"), self.out)

    def test_a_bound_account_the_library_system_refuses_leaves_the_device_to_log_in_itself(self):
        self.gateway.account_settings["sc1"] = AccountSettings(upstream_login="sorter1", upstream_password="bad")
        s = self.session()
        s.bind("sc1", "listener setting 'account'")
        self.up.flush()
        self.assertIs(s.state, State.AWAITING_LOGIN)
        self.assertIn("the library system refused upstream_login 'sorter1' of account 'sc1'", self.logs.text())
        self.assertNotIn("bad", self.logs.text())

    def test_the_devices_upstream_connection_closes_with_its_own(self):
        s = self.session()
        self.assertEqual(self.send(s, "9300CNsorter1|COpw1|CPS1|"), b"941")
        self.assertEqual(len([c for c in self.server.connections if not c.gone]), 1)
        s.connection_lost()
        self.up.flush()
        self.assertEqual([c for c in self.server.connections if not c.gone], [])

    def test_each_device_has_its_own_upstream_login(self):
        one, two = self.session("a"), self.session("b")
        self.assertEqual(self.send(one, "9300CNsorter1|COpw1|CPS1|"), b"941")
        self.assertEqual(self.send(two, "9300CNgw|COsecret|CPS2|"), b"941")
        self.assertEqual((one.account.name, two.account.name), ("sorter1", "gw"))
        self.assertEqual(len(self.server.connections), 2)

    def test_an_account_a_door_checked_itself_logs_in_upstream_too(self):
        s = self.session()
        s.bind_account(self.own_accounts.accounts["sc1"][1])  # as the telnet door does after its prompt
        self.up.flush()
        self.assertIs(s.state, State.READY)
        self.assertEqual([msg.get("CN") for msg in self.server.received if msg.code == "93"], ["sorter1"])
        self.assertTrue(self.send(s, "9900302.00").startswith(b"98Y"))
