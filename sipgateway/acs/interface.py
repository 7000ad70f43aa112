"""The interfaces between the SIP session and a library system.

``IAccounts`` is who may log in: SC accounts, checked by password (93, telnet) or looked
up by name (a serial line's ``account=``, a TLS certificate's account).  ``IACS`` is
circulation: one method per request code, named by the request table
(``sipgateway.exchange``), each taking the terminal and the request's model value
(``sipgateway.acs.requests``) and returning a ``Deferred`` that fires with a plain value of
``sipgateway.acs.model`` (never a SIP message).  A backend that cannot list accounts (a
library system reached over SIP2) implements ``IACS`` only and leaves accounts to the
gateway's own store.

Expected refusals (unknown patron, wrong PIN, item out to someone else) are *results* with
``ok=False`` and screen messages; a raised exception or failed Deferred means the backend
itself is broken, and the session answers with the request's failure reply.

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


class IAccounts(Interface):
    def authenticate(username: str, password: str, location: str):
        """Check SC login credentials (93, telnet).  Fires with an ``Account`` or ``None``."""

    def account(name: str):
        """Look up an SC account without a password (serial lines, TLS client
        certificates bound to an account).  Fires with an ``Account`` or ``None``."""


class IACS(Interface):
    supported = Attribute("frozenset of request codes this backend serves, e.g. {'23', '11'}")
    answers_by_deadline = Attribute("True when every call is answered by its terminal's deadline, except a "
                                    "write already being applied, answered when its outcome is known "
                                    "(optional; absent means False)")

    def status(terminal, request):
        """SC status (99, a ``StatusRequest``).  Fires with ``ACSStatus``."""

    def patron_status(terminal, request):
        """Patron status (23, a ``PatronStatusRequest``).  Fires with ``PatronStatus``."""

    def patron_information(terminal, request):
        """Patron information (63, a ``PatronInformationRequest``; its item list already cut to
        start..end, 1-based inclusive).  Fires with ``PatronInformation``."""

    def block_patron(terminal, request):
        """Block patron (01, a ``BlockPatronRequest``).  Fires with the patron's new ``PatronStatus``."""

    def patron_enable(terminal, request):
        """Patron enable (25, a ``PatronEnableRequest``).  Fires with ``PatronStatus``."""

    def checkout(terminal, request):
        """Checkout (11, a ``CheckoutRequest``).  Fires with ``CirculationResult``."""

    def renew(terminal, request):
        """Renew (29, a ``CheckoutRequest``).  Fires with ``CirculationResult``."""

    def renew_all(terminal, request):
        """Renew all (65, a ``RenewAllRequest``).  Fires with ``RenewAllResult``."""

    def checkin(terminal, request):
        """Checkin (09, a ``CheckinRequest``).  Fires with ``CheckinResult``.  A checkin of an
        item that was not on loan answers ok or not ok with an alert by the terminal's
        ``checked_in_ok`` (the account's setting); the checkin is done either way."""

    def item_information(terminal, request):
        """Item information (17, an ``ItemInformationRequest``).  Fires with ``ItemInformation``."""

    def item_status_update(terminal, request):
        """Item status update (19, an ``ItemStatusUpdateRequest``).  Fires with ``ItemStatusUpdateResult``."""

    def hold(terminal, request):
        """Hold (15, a ``HoldRequest``).  Fires with ``HoldResult``."""

    def end_session(terminal, request):
        """End patron session (35, an ``EndSessionRequest``).  Fires with ``EndSessionResult``."""

    def fee_paid(terminal, request):
        """Fee paid (37, a ``FeePayment``).  Fires with ``FeePaidResult``."""

    # OCLC Wise SIP2+ (answers in ``sipgateway.acs.wise``); a backend that does not offer
    # one answers it "not done" with a screen message saying so.

    def usage_debit(terminal, request):
        """Usage debit (39, a ``UsageDebit``).  Fires with ``UsageDebitResult``."""

    def payments_overview(terminal, request):
        """Payments overview (41, a ``PaymentsOverviewRequest``).  Fires with ``PaymentsOverview``."""

    def renewal_options(terminal, request):
        """Renewal options (70, a ``RenewalOptionsRequest``).  Fires with ``RenewalOptions``."""

    def punch_card_options(terminal, request):
        """Punch-card options (Y1, a ``PunchCardOptionsRequest``).  Fires with ``PunchCardOptions``."""

    def punch_card_purchase(terminal, request):
        """Punch-card purchase (Y3, a ``PunchCardPurchase``).  Fires with ``PunchCardPurchaseResult``."""

    def save_username(terminal, request):
        """Save user name (X1, a ``UsernameRequest``).  Fires with ``UsernameResult``."""

    def close():
        """Release resources (processes, connections).  Fires when done."""
