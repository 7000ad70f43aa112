"""Remembered pass-through logins are written to the journal (a PBKDF2 hash, ~10 ms of CPU)
only when a login's credentials change: devices log in again on every reconnect."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.offline.logins import RememberedLogins


class RememberedLoginsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.pending: list[Deferred] = []
        self.logins = RememberedLogins(self.write, size=2)

    def write(self, login: str, password: str) -> Deferred:
        self.writes.append((login, password))
        d: Deferred = Deferred()
        self.pending.append(d)
        return d

    def commit(self) -> None:
        while self.pending:
            self.pending.pop(0).callback(None)

    def test_the_same_credentials_again_are_not_written_again(self) -> None:
        first = self.logins.remember("sorter1", "pw1")
        self.assertNoResult(first)  # fires once the journal committed them
        self.commit()
        self.successResultOf(first)
        self.successResultOf(self.logins.remember("sorter1", "pw1"))
        self.assertEqual(self.writes, [("sorter1", "pw1")])

    def test_a_changed_password_or_another_login_is_written(self) -> None:
        for login, password in (("sorter1", "pw1"), ("sorter1", "pw2"), ("kiosk", "pw2"), ("sorter1", "pw1")):
            self.logins.remember(login, password)
            self.commit()
        self.assertEqual(self.writes, [("sorter1", "pw1"), ("sorter1", "pw2"), ("kiosk", "pw2"), ("sorter1", "pw1")])

    def test_ten_devices_logging_in_at_once_with_one_account_write_once(self) -> None:
        ds = [self.logins.remember("branch", "secret") for _ in range(10)]
        self.assertEqual(self.writes, [("branch", "secret")])
        self.commit()
        for d in ds:
            self.successResultOf(d)

    def test_a_failed_write_is_not_remembered_and_is_tried_again(self) -> None:
        first = self.logins.remember("sorter1", "pw1")
        self.pending.pop().errback(OSError("disk full"))
        self.failureResultOf(first, OSError)
        self.assertEqual(len(self.logins), 0)
        self.logins.remember("sorter1", "pw1")
        self.assertEqual(self.writes, [("sorter1", "pw1"), ("sorter1", "pw1")])

    def test_bounded_the_least_recently_seen_login_is_forgotten(self) -> None:
        for login in ("a", "b", "a", "c"):  # size 2: "b" is the least recently seen when "c" comes
            self.logins.remember(login, "pw")
            self.commit()
        self.assertEqual(len(self.logins), 2)
        self.logins.remember("a", "pw")
        self.logins.remember("b", "pw")
        self.assertEqual([w[0] for w in self.writes], ["a", "b", "c", "b"])
