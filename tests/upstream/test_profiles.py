"""A test per profile quirk, against fake servers that have it: what goes on the wire, and
that the request table's ``Exchange.read`` never sees the quirk."""

from __future__ import annotations

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.upstream.connection import probe_server
from sipgateway.acs.upstream.errors import BadReply
from sipgateway.acs.upstream.profiles import PROFILES, sip_date_from_iso
from sipgateway.acs.upstream.wire import WireSettings
from sipgateway.exchange import CHECKIN, CHECKOUT
from sipgateway.sip2 import Message
from tests.upstream.fakes import DUE, Behaviour
from tests.upstream.helpers import CHECKIN_FIELDS, CHECKIN_FIXED, LogCapture, protocol
from tests.upstream.test_pool import CHECKOUT_FIXED, PoolHarness, checkout_fields


def pooled(testcase, profile: str, behaviour: Behaviour | None = None, pool: int = 1, **url_keys) -> PoolHarness:
    extra = "".join(f"&{k}={v}" for k, v in url_keys.items())
    h = PoolHarness(testcase, url=f"sip2://ils:6001?profile={profile}&login=gw&password=secret&pool={pool}{extra}",
                    behaviour=behaviour or Behaviour(profile=profile))
    h.start()
    h.advance(0.1, step=0.01)  # Symphony's login reply comes in pieces too
    return h


def checkout(h: PoolHarness, item: str = "it2", patron: str = "p1"):
    d = h.pool.request("11", CHECKOUT_FIXED, checkout_fields(item, patron))
    h.advance(0.1, step=0.01)
    return d


class KohaTests(SynchronousTestCase):
    def test_requests_end_in_crlf_and_crlf_replies_are_read(self):
        proto, transport, _ = protocol("koha")
        proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        self.assertTrue(transport.value().endswith(b"\r\n"))
        h = pooled(self, "koha")
        self.assertEqual(self.successResultOf(checkout(h)).fixed["ok"], "1")
        self.assertEqual(self.successResultOf(checkout(h, "it3")).fixed["ok"], "1")  # no stray LF between replies

    def test_bar_entity_in_values_is_a_bar_for_the_model(self):
        h = pooled(self, "koha")
        msg = self.successResultOf(checkout(h, "it1"))
        self.assertIn(b"AJMoby&#124;Dick|", h.fake.last_reply)
        self.assertEqual(msg.get("AJ"), "Moby|Dick")
        self.assertEqual(CHECKOUT.read(msg).title, "Moby|Dick")

    def test_no_99_before_login(self):
        h = pooled(self, "koha")
        d = h.pool.probe()
        h.flush()
        self.assertTrue(self.successResultOf(d))  # after the login: answered
        self.assertEqual(h.fake.codes(), ["93", "99"])
        settings = WireSettings.for_profile(PROFILES["koha"])
        d = probe_server(h.endpoint, settings=settings, clock=h.clock, server="ils:6001", timeout=5)
        h.flush()
        self.assertTrue(self.successResultOf(d))
        self.assertEqual(h.fake.codes(), ["93", "99"])  # the pass-through probe sent no 99

    def test_keepalive_99_keeps_an_idle_connection_open(self):
        h = pooled(self, "koha", Behaviour(profile="koha", idle_timeout=90))
        conn = h.pool._slots[0].conn
        h.advance(400, step=5)
        self.assertIs(h.pool._slots[0].conn, conn)
        self.assertTrue(conn.alive)
        self.assertEqual(h.fake.codes(), ["93"] + ["99"] * 6)
        self.successResultOf(checkout(h))

    def test_without_keepalive_such_a_server_drops_us(self):
        h = pooled(self, "generic", Behaviour(profile="koha", idle_timeout=90))
        conn = h.pool._slots[0].conn
        h.advance(95, step=5)
        self.assertFalse(conn.alive)


class EvergreenTests(SynchronousTestCase):
    def test_no_99_before_login_in_pass_through_probes(self):
        h = pooled(self, "evergreen")
        for profile, answered, codes in (("evergreen", True, []), ("generic", False, ["99"])):
            before = len(h.fake.received)
            settings = WireSettings.for_profile(PROFILES[profile])
            d = probe_server(h.endpoint, settings=settings, clock=h.clock, server="ils:6001", timeout=5)
            h.flush()
            self.assertEqual(self.successResultOf(d), answered, profile)
            self.assertEqual(h.fake.codes()[before:], codes, profile)

    def test_bad_login_closes_the_connection_and_counts_as_refused(self):
        h = PoolHarness(self, url="sip2://ils:6001?profile=evergreen&login=gw&password=wrong&pool=1",
                        behaviour=Behaviour(profile="evergreen"))
        log = LogCapture(self)
        h.start()
        self.assertEqual(h.pool.ready_connections, 0)
        self.assertEqual(h.outcomes, [(False, "the server closed the connection on our login")])
        h.advance(10)
        self.assertEqual(len([x for x in log.lines(LogLevel.warn) if "closed the connection on our login" in x]), 1)

    def test_iso_due_dates_become_sip2_dates(self):
        h = pooled(self, "evergreen")
        msg = self.successResultOf(checkout(h))
        self.assertIn(b"AH2024-05-27 23:59:00|", h.fake.last_reply)
        self.assertEqual(msg.get("AH"), "20240527    235900")
        self.assertEqual(CHECKOUT.read(msg).due_date, DUE)

    def test_iso_date_forms(self):
        self.assertEqual(sip_date_from_iso("2024-05-27 23:59:00"), "20240527    235900")
        self.assertEqual(sip_date_from_iso("2024-05-27T08:05"), "20240527    080500")
        self.assertEqual(sip_date_from_iso("2024-05-27"), "20240527    235959")
        self.assertEqual(sip_date_from_iso("20240527    235900"), "20240527    235900")
        self.assertEqual(sip_date_from_iso("next week"), "next week")


class FolioTests(SynchronousTestCase):
    def test_problems_line_is_a_clear_error_and_the_connection_stays(self):
        h = pooled(self, "folio", Behaviour(profile="folio",
                                            garbage_on={"09": b"Problems handling the request: NullPointerException"}))
        d = h.pool.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        h.advance(0.1)
        f = self.failureResultOf(d, BadReply)
        self.assertIn("not a SIP2 reply", str(f.value))
        self.assertIn("Problems handling the request: NullPointerException", f.value.line)
        self.assertEqual(len(h.fake.connections), 1)
        self.successResultOf(checkout(h))
        self.assertEqual(len(h.fake.connections), 1)

    def test_ibm850_both_ways(self):
        h = pooled(self, "folio")
        msg = self.successResultOf(checkout(h, "it3", patron="Zoë"))
        self.assertEqual(msg.get("AJ"), "Café crème")
        self.assertEqual(msg.get("AA"), "Zoë")
        self.assertIn("Zoë".encode("cp850"), h.fake.raw[-1])

    def test_login_before_every_request(self):
        h = pooled(self, "folio", Behaviour(profile="folio", token_uses=1))
        for item in ("it1", "it2", "it3"):
            self.assertEqual(self.successResultOf(checkout(h, item)).fixed["ok"], "1")
        self.assertEqual(h.fake.codes(), ["93", "93", "11", "93", "11", "93", "11"])

    def test_without_it_the_sorter_problem(self):
        h = PoolHarness(self, url="sip2://ils:6001?login=gw&password=secret&pool=1&encoding=cp850",
                        behaviour=Behaviour(profile="folio", token_uses=1))
        h.start()
        self.successResultOf(checkout(h, "it1"))
        f = self.failureResultOf(checkout(h, "it2"), BadReply)
        self.assertIn("Access token is missing", f.value.line)


class SymphonyTests(SynchronousTestCase):
    def test_a_reply_in_several_reads(self):
        h = pooled(self, "symphony")
        d = h.pool.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        h.flush()
        self.assertNoResult(d)  # half a reply so far
        h.clock.advance(0.015)
        h.flush()
        self.assertNoResult(d)  # all of it but the terminator
        h.clock.advance(0.01)
        h.flush()
        self.assertEqual(CHECKIN.read(self.successResultOf(d)).permanent_location, "MAIN")


class AlmaTests(SynchronousTestCase):
    def test_checkout_of_own_loan_renews_and_is_passed_on_as_such(self):
        h = pooled(self, "alma")
        first = CHECKOUT.read(self.successResultOf(checkout(h, "it1")))
        again = CHECKOUT.read(self.successResultOf(checkout(h, "it1")))
        self.assertEqual((first.ok, first.renewal_ok), (True, False))
        self.assertEqual((again.ok, again.renewal_ok), (True, True))
        self.assertGreater(again.due_date, first.due_date)
        self.assertEqual(h.fake.library.log, ["checkout it1 p1", "renew it1 p1"])

    def test_resending_a_checkout_is_not_safe_on_alma(self):
        no_renewal = dict(CHECKOUT_FIXED, sc_renewal_policy="N")
        self.assertTrue(PROFILES["generic"].resend_safe("11", no_renewal))
        self.assertFalse(PROFILES["alma"].resend_safe("11", no_renewal))
        self.assertFalse(PROFILES["generic"].resend_safe("11", dict(no_renewal, sc_renewal_policy="Y")))
        for code in ("09", "29", "37", "15"):
            self.assertFalse(PROFILES["generic"].resend_safe(code, {}), code)
        for code in ("17", "63", "23", "99"):
            self.assertTrue(PROFILES["alma"].resend_safe(code, {}), code)


class LenientChecksumTests(SynchronousTestCase):
    def test_lowercase_character_sums_and_missing_checksums_are_read(self):
        for mode in ("lowercase", "characters", "none"):
            h = pooled(self, "generic", Behaviour(checksum=mode))
            msg = self.successResultOf(checkout(h, "it3"))  # "Café crème": byte and character sums differ
            self.assertEqual(msg.get("AJ"), "Café crème", mode)
            self.assertEqual(h.fake.codes().count("97"), 0, mode)

    def test_normalise_leaves_clean_messages_alone(self):
        msg = Message("10", {"ok": "1"}, {"AB": "x", "AH": "2024-01-01"})
        self.assertIs(PROFILES["generic"].normalise(msg), msg)
        self.assertIs(PROFILES["koha"].normalise(msg), msg)
        self.assertEqual(PROFILES["evergreen"].normalise(msg).get("AH"), "20240101    235959")
