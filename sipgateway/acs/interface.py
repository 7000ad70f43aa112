"""IACS: the one interface between the SIP session and a library system.

Every method returns a ``Deferred`` that fires with one of the plain values of
``sipgateway.acs.model`` (never a SIP message).  Expected refusals (unknown
patron, wrong PIN, item out to someone else) are *results* with ``ok=False``
and screen messages; a raised exception or failed Deferred means the backend
itself is broken, and the session answers with a generic failure reply.

Deadlines: the terminal passed to a call carries the time by which the gateway must answer
(``Terminal.deadline``).  A backend that declares ``answers_by_deadline = True`` promises to
fire every call's Deferred by then, with one exception: a write it has already started
applying is answered when its outcome is known (ok when it committed), however late.  The
session then sets no timer of its own.  A call failed because its deadline passed fails
with ``model.ACSTimeout``, which means nothing was changed.  Backends without the attribute
are timed by the session, which sends its failure reply after ``acs_timeout`` whatever the
backend does later.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IACS(Interface):
    supported = Attribute("frozenset of request codes this backend serves, e.g. {'23', '11'}")
    answers_by_deadline = Attribute("True when every call is answered by its terminal's deadline, except a "
                                    "write already being applied, answered when its outcome is known "
                                    "(optional; absent means False)")

    def authenticate(username: str, password: str, location: str):
        """Check SC login credentials (93).  Fires with an ``Account`` or ``None``."""

    def account(name: str):
        """Look up an SC account without a password (serial lines, TLS client
        certificates bound to an account).  Fires with an ``Account`` or ``None``."""

    def status(terminal):
        """SC status (99).  Fires with ``ACSStatus``."""

    def patron_status(terminal, patron_id: str, patron_pin: str | None):
        """Patron status (23).  Fires with ``PatronStatus``."""

    def patron_information(terminal, patron_id: str, patron_pin: str | None,
                           item_list, start: int | None, end: int | None):
        """Patron information (63).  ``item_list`` is an ``ItemList`` or None;
        ``start``/``end`` are 1-based inclusive.  Fires with ``PatronInformation``."""

    def block_patron(terminal, patron_id: str, message: str, card_retained: bool):
        """Block patron (01).  Fires with the patron's new ``PatronStatus``."""

    def patron_enable(terminal, patron_id: str, patron_pin: str | None):
        """Patron enable (25).  Fires with ``PatronStatus``."""

    def checkout(terminal, request):
        """Checkout (11) of a ``CheckoutRequest``.  Fires with ``CirculationResult``."""

    def renew(terminal, request):
        """Renew (29) of a ``CheckoutRequest``.  Fires with ``CirculationResult``."""

    def renew_all(terminal, patron_id: str, patron_pin: str | None, fee_acknowledged: bool):
        """Renew all (65).  Fires with ``RenewAllResult``."""

    def checkin(terminal, request):
        """Checkin (09) of a ``CheckinRequest``.  Fires with ``CheckinResult``.  An item
        that was not on loan is checked in all the same; ``terminal.checked_in_ok`` says
        whether that is answered ok, or not ok with an alert and a screen message."""

    def item_information(terminal, item_id: str):
        """Item information (17).  Fires with ``ItemInformation``."""

    def item_status_update(terminal, item_id: str, item_properties: str):
        """Item status update (19).  Fires with ``ItemStatusUpdateResult``."""

    def hold(terminal, request):
        """Hold (15) of a ``HoldRequest``.  Fires with ``HoldResult``."""

    def end_session(terminal, patron_id: str, patron_pin: str | None):
        """End patron session (35).  Fires with ``EndSessionResult``."""

    def fee_paid(terminal, payment):
        """Fee paid (37) of a ``FeePayment``.  Fires with ``FeePaidResult``."""

    def close():
        """Release resources (threads, connections).  Fires when done."""
