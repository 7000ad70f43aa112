"""Per-device response deadlines: how long the gateway may take to answer one request.

A device's deadline (``deadline`` in milliseconds, on its listener or its account) is a hard
limit of the device: an RFID sorter gives up on a reply after a second and diverts the item.
Without one, ``acs_timeout`` bounds every call.  The session gives each call to the backend
with a deadline (``Terminal.deadline``) that falls a little before the device's own, so that
the failure reply ("did not answer in time") is written while the device still waits: at
the latest 10 % (at most ``DEADLINE_SLACK``) before it, at the earliest twice that.
"""

from __future__ import annotations

#: how much earlier than the device's deadline the call's deadline may fall, at most (seconds);
#: without a device deadline, how much later than arrival + acs_timeout
DEADLINE_SLACK = 0.1
#: bounds of a ``deadline`` key (milliseconds): below 100 ms nothing can be promised
MIN_DEADLINE_MS = 100
MAX_DEADLINE_MS = 3_600_000


def answer_window(acs_timeout: float, *deadlines: float | None) -> tuple[float, float]:
    """``(within, slack)``: a call arriving at ``t`` is given to the backend with a deadline
    between ``t + within`` and ``t + within + slack``.  ``deadlines`` are the device's
    deadlines in seconds (listener's, account's; None where unset); the shortest applies,
    and ``acs_timeout`` when it is shorter still."""
    given = [d for d in deadlines if d is not None and d < acs_timeout]
    if not given:
        return acs_timeout, DEADLINE_SLACK
    device = min(given)
    margin = min(DEADLINE_SLACK, device / 10)
    return device - 2 * margin, margin
