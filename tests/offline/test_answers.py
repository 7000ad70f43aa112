"""Saved answers (17, 63, 23) for while the library system is offline."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs import model as m
from sipgateway.acs.offline.answers import SavedAnswers


class SavedAnswersTests(SynchronousTestCase):
    def test_saved_answer_says_nothing_of_the_pin_and_is_marked(self) -> None:
        clock = Clock()
        clock.advance(1_700_000_000)
        saved = SavedAnswers(clock)
        answer = m.PatronInformation(patron_id="p1", name="Ada", valid=True, pin_valid=True,
                                     messages=m.Messages(screen=("Hello",)))
        saved.put(("63", "MAIN", "p1"), answer)
        self.assertTrue(answer.pin_valid)  # the answer given to the device is not changed
        got = saved.get(("63", "MAIN", "p1"))
        self.assertIsNone(got.pin_valid)
        self.assertEqual(got.name, "Ada")
        self.assertEqual(got.messages.screen[0], "Hello")
        self.assertIn("saved answer from", got.messages.screen[1])

    def test_an_answer_without_a_pin_outcome_is_kept_as_it_is(self) -> None:
        clock = Clock()
        saved = SavedAnswers(clock)
        answer = m.ItemInformation(item_id="it1", title="Ulysses")
        saved.put(("17", "MAIN", "it1"), answer)
        got = saved.get(("17", "MAIN", "it1"))
        self.assertEqual((got.item_id, got.title), ("it1", "Ulysses"))
        self.assertIn("saved answer from", got.messages.screen[-1])
