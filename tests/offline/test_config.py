"""The offline policy keys: defaults, [upstream] as the default for accounts, errors naming the key."""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from sipgateway.config import ConfigError, load
from sipgateway.config.offline import OfflinePolicy, offline_policy


class PolicyTests(SynchronousTestCase):
    def test_defaults_refuse(self):
        p = offline_policy({}, "[upstream]")
        self.assertEqual(p, OfflinePolicy(accept=False, loan_days=14, max_checkouts=10, items=(), patrons=()))
        self.assertTrue(p.item_allowed("anything") and p.patron_allowed("anyone"))

    def test_keys_and_patterns(self):
        p = offline_policy({"offline": "Accept", "offline_loan_days": "7", "offline_max_checkouts": "3",
                            "offline_items": "3900*, 3901?", "offline_patrons": "2[0-9]*"}, "[upstream]")
        self.assertEqual((p.accept, p.loan_days, p.max_checkouts, p.items, p.patrons),
                         (True, 7, 3, ("3900*", "3901?"), ("2[0-9]*",)))
        self.assertTrue(p.item_allowed("39001234") and p.item_allowed("39015"))
        self.assertFalse(p.item_allowed("39021234") or p.patron_allowed("3x"))

    def test_errors_name_the_key(self):
        for values, message in (
                ({"offline": "maybe"}, "[account:k] offline='maybe' must be refuse or accept"),
                ({"offline_loan_days": "two"}, "[account:k]: offline_loan_days='two' is not a whole number"),
                ({"offline_loan_days": "0"}, "[account:k]: offline_loan_days='0' must be at least 1"),
                ({"offline_loan_days": "400"}, "[account:k]: offline_loan_days=400 must be at most 366"),
                ({"offline_max_checkouts": "-1"}, "[account:k]: offline_max_checkouts='-1' must be at least 0"),
                ({"offline_items": "39[0"}, "[account:k] offline_items: pattern '39[0' has an unclosed [ ]")):
            with self.assertRaises(ConfigError) as e:
                offline_policy(values, "[account:k]")
            self.assertIn(message, str(e.exception))


class LoadTests(SynchronousTestCase):
    def config(self, text: str):
        fd, path = tempfile.mkstemp(suffix=".ini")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return load(path)

    def test_accounts_take_their_own_keys_and_the_default_for_the_rest(self):
        config = self.config("[account:kiosk]\noffline = accept\noffline_max_checkouts = 2\n"
                             "[account:staff]\nchecked_in_ok = no\n")
        self.assertEqual(config.offline.policy("kiosk"), OfflinePolicy(accept=True, max_checkouts=2))
        self.assertEqual(config.offline.policy("staff"), OfflinePolicy())
        self.assertTrue(config.offline.any_accepts)

    def test_a_bad_account_key_stops_loading_with_its_name(self):
        with self.assertRaisesRegex(ConfigError, r"\[account:kiosk\] offline='yes' must be refuse or accept"):
            self.config("[account:kiosk]\noffline = yes\n")


class UpstreamDefaultTests(SynchronousTestCase):
    def parse(self, text: str):
        import configparser

        from sipgateway.config.offline import offline_config
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
        return offline_config(parser)

    def test_upstream_gives_the_default_that_accounts_refine(self):
        config = self.parse("[upstream]\noffline = accept\noffline_loan_days = 7\n"
                            "offline_replay_login = replay\noffline_replay_password = pw\n"
                            "[account:staff]\noffline = refuse\n")
        self.assertEqual(config.default, OfflinePolicy(accept=True, loan_days=7))
        self.assertEqual(config.policy("staff"), OfflinePolicy(accept=False, loan_days=7))
        self.assertEqual(config.policy("anyone"), config.default)
        self.assertEqual((config.replay_login, config.replay_password), ("replay", "pw"))
        self.assertNotIn("pw", repr(config))

    def test_replay_credentials_come_in_pairs(self):
        with self.assertRaisesRegex(ConfigError, "offline_replay_login and offline_replay_password: give both"):
            self.parse("[upstream]\noffline_replay_login = replay\n")
