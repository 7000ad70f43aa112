"""The demo library: three SC accounts, four patrons, six items of MAIN and three each of
UWOLS and LPL (so a terminal of those libraries can check in without a transit alert).

Tests and examples rely on these names, PINs and states (README.rst lists them); extra
detail (titles, locations, media types, a fine) makes the demo look like a small real library.
"""

from __future__ import annotations

from datetime import timedelta

from sipgateway.acs import model as m
from sipgateway.acs.sqlite import accounts
from sipgateway.acs.sqlite.context import Tx, stamp
from sipgateway.acs.sqlite.credentials import check_secret, hash_secret

MAIN = "MAIN"

ACCOUNTS = (
    # name, password, institution, encoding, library name
    ("sc1", "pass1", MAIN, "utf-8", "Main Library"),
    ("scclient", "clientpwd", "UWOLS", "ascii", "University Libraries"),
    ("lpl-sc", "1234", "LPL", "utf-8", "Lakeside Public Library"),
)

PATRONS = (
    # barcode, PIN, name, email, phone, address, language
    ("100001", "1234", "Ada Lovelace", "ada@example.org", "555-0101", "12 St James's Square, London", "001"),
    ("100002", "1234", "Charles Babbage", "charles@example.org", "555-0102", "1 Dorset Street, London", "001"),
    ("djfiander", "6789", "David J. Fiander", "djfiander@example.org", "555-0103", "1 Library Lane", "001"),
    ("miker", "6789", "Mike Rylander", "miker@example.org", "555-0104", "2 Library Lane", "001"),
)

ITEMS = (
    # barcode, title, author, call number, media type, magnetic
    ("200001", "Sketch of the Analytical Engine", "Menabrea, L. F.", "QA76.17 .M46 1843", "001", False),
    ("200002", "The Difference Engine", "Gibson, William", "PS3557.I2264 D54 1991", "001", False),
    ("200003", "Flatland: a romance of many dimensions", "Abbott, Edwin A.", "QA699 .A13 1884", "001", False),
    ("1565921879", "Perl 5 desktop reference", "Vromans, Johan", "QA76.73.P33V76 1996", "001", False),
    ("0440242746", "The deep blue alibi", "Whitney, Ana", "PS3573.H54 D44 2005", "004", True),
    ("660", "Harry Potter y el cáliz de fuego", "Rowling, J. K.", "PZ73 .R6985 2001", "001", False),
)

#: the other libraries' own copies: barcode, title, author, call number, media type, library
BRANCH_ITEMS = (
    ("300001", "The art of computer programming, vol. 1", "Knuth, Donald E.", "QA76.6 .K64 1997", "001", "UWOLS"),
    ("300002", "Structure and interpretation of computer programs", "Abelson, Harold", "QA76.6 .A255 1996",
     "001", "UWOLS"),
    ("300003", "Gödel, Escher, Bach", "Hofstadter, Douglas R.", "QA9.8 .H63 1979", "001", "UWOLS"),
    ("400001", "Charlotte's web", "White, E. B.", "PZ7.W5826 Ch 1952", "001", "LPL"),
    ("400002", "The very hungry caterpillar", "Carle, Eric", "PZ7.C21476 Ve 1969", "001", "LPL"),
    ("400003", "Where the wild things are", "Sendak, Maurice", "PZ7.S4688 Wh 1963", "001", "LPL"),
)

BLOCKED_MESSAGE = "Charge privileges denied: fines owed; please see staff"


#: what a library needs before a device can do anything: table → its name in a warning
CONTENTS = (("sc_accounts", "SC accounts"), ("patrons", "patrons"), ("items", "items"))


def missing_contents(tx: Tx) -> list[str]:
    """The names of the ``CONTENTS`` the database has none of."""
    return [name for table, name in CONTENTS if not tx.value(f"SELECT EXISTS (SELECT 1 FROM {table})")]


def is_empty(tx: Tx) -> bool:
    return len(missing_contents(tx)) == len(CONTENTS)


def demo_credentials(tx: Tx) -> list[str]:
    """The demo SC accounts that still log in with their published password: whoever has
    read README.rst can use this gateway."""
    found = []
    for name, password, *_ in ACCOUNTS:
        stored = tx.value("SELECT password_hash FROM sc_accounts WHERE name = ? AND enabled = 1", name)
        if stored is not None and check_secret(password, stored):
            found.append(name)
    return found


def seed_demo(tx: Tx) -> bool:
    """Load the demo library into an empty database.  False (and nothing written) otherwise."""
    if not is_empty(tx):
        return False
    now = tx.now
    for name, password, institution, encoding, library in ACCOUNTS:
        accounts.ensure(tx, name, password, institution, encoding, "auto", library, "", True)
    expires = (now + timedelta(days=3 * 365)).date().isoformat()
    for barcode, pin, name, email, phone, address, language in PATRONS:
        tx.run("INSERT INTO patrons (barcode, pin_hash, name, email, phone, address, language, home_library, "
               "expires_on, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               barcode, hash_secret(pin, tx.ctx.hash_iterations), name, email, phone, address, language, MAIN,
               expires, tx.stamp)
    copies = [(*item, MAIN) for item in ITEMS]
    copies += [(barcode, title, author, call_number, media, False, library)
               for barcode, title, author, call_number, media, library in BRANCH_ITEMS]
    for barcode, title, author, call_number, media, magnetic, library in copies:
        tx.run("INSERT INTO items (barcode, title, author, call_number, media_type, collection_code, "
               "permanent_location, current_location, owner, magnetic_media, created_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               barcode, title, author, call_number, media, "ADULT", library, library, library, int(magnetic),
               tx.stamp)

    def pid(barcode: str) -> int:
        return tx.value("SELECT id FROM patrons WHERE barcode = ?", barcode)

    def iid(barcode: str) -> int:
        return tx.value("SELECT id FROM items WHERE barcode = ?", barcode)

    # 100002 returned the Perl book five weeks late and has not paid: blocked, fines over the limit
    out, due = now - timedelta(days=70), now - timedelta(days=49)
    loan = tx.run("INSERT INTO loans (item_id, patron_id, out_at, due_at, returned_at, location) "
                  "VALUES (?, ?, ?, ?, ?, ?)", iid("1565921879"), pid("100002"), stamp(out),
                  stamp(due.replace(hour=23, minute=59, second=59)), stamp(now - timedelta(days=14)), MAIN)
    fee = tx.run("INSERT INTO fees (patron_id, item_id, loan_id, fee_type, description, amount_cents, created_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)", pid("100002"), iid("1565921879"), loan, int(m.FeeType.OVERDUE),
                 "overdue: 1565921879 Perl 5 desktop reference", 1250, stamp(now - timedelta(days=14)))
    tx.run("UPDATE loans SET fine_fee_id = ? WHERE id = ?", fee, loan)
    tx.run("UPDATE patrons SET blocked = 1, block_message = ? WHERE barcode = '100002'", BLOCKED_MESSAGE)

    # 200003 waits on the hold shelf at MAIN for 100001
    tx.run("INSERT INTO holds (patron_id, item_id, title_key, pickup_location, hold_type, expires_at, queued_at, "
           "status, trapped_item_id, shelf_expires_at) VALUES (?, ?, ?, ?, 3, ?, ?, 'on_shelf', ?, ?)",
           pid("100001"), iid("200003"), "flatland: a romance of many dimensions", MAIN,
           stamp(tx.rules.hold_expiry(now)), stamp(now - timedelta(days=10)), iid("200003"),
           stamp(tx.rules.shelf_expiry(now)))
    tx.run("UPDATE items SET status = 'on_hold_shelf' WHERE barcode = '200003'")
    tx.log("seed_demo", True, detail="demo library loaded")
    return True
