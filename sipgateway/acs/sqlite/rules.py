"""Circulation policy of the embedded library system: loan periods, renewals, fines, holds.

Plain values and pure functions, so the rules can be read (and tested) without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType

#: media type (SIP2 CK) → loan period in days; anything else gets ``default_loan_days``
DEFAULT_LOAN_DAYS: Mapping[str, int] = MappingProxyType({"001": 21, "008": 21, "009": 21, "010": 21})
#: due dates are at the end of the day (local time), as most libraries print them
END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class CirculationRules:
    loan_days: Mapping[str, int] = field(default_factory=lambda: DEFAULT_LOAN_DAYS)
    default_loan_days: int = 7
    max_renewals: int = 3
    fine_per_day_cents: int = 25
    max_fine_cents: int = 1000          # overdue fine cap per loan
    hold_shelf_days: int = 7            # how long a trapped item waits for its patron
    hold_expiry_days: int = 365         # default expiry of a hold request

    def __reduce__(self):
        # a read-only mapping does not pickle; the database process gets a plain copy
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        values["loan_days"] = dict(self.loan_days)
        return _rebuild_rules, (values,)

    def loan_period(self, media_type: str) -> int:
        return self.loan_days.get(media_type, self.default_loan_days)

    def due_date(self, media_type: str, now: datetime) -> datetime:
        """End of the last day of the loan period, counted from today."""
        return end_of_day(now.date() + timedelta(days=self.loan_period(media_type)))

    def overdue_fine(self, due: datetime, returned: datetime) -> int:
        """The fine in cents for returning at ``returned`` what was due at ``due``."""
        if returned <= due:
            return 0
        days = max(1, (returned.date() - due.date()).days)
        return min(days * self.fine_per_day_cents, self.max_fine_cents)

    def shelf_expiry(self, now: datetime) -> datetime:
        return end_of_day(now.date() + timedelta(days=self.hold_shelf_days))

    def hold_expiry(self, now: datetime) -> datetime:
        return end_of_day(now.date() + timedelta(days=self.hold_expiry_days))


def end_of_day(day: date) -> datetime:
    return datetime.combine(day, END_OF_DAY)


def _rebuild_rules(values: dict) -> CirculationRules:
    return CirculationRules(**{**values, "loan_days": MappingProxyType(values["loan_days"])})
