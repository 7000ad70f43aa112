"""Child process for the durability test: checks items out through the real database
process on a real reactor, prints "ok <item>" once each Deferred has fired, then waits to
be killed.  Usage: python -m tests.acs.durability_child PATH ITEM..."""

from __future__ import annotations

import sys

from twisted.internet import reactor

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import open_sqlite_acs

TERMINAL = m.Terminal(account="sc1", institution="MAIN", location="MAIN")


def main(path: str, items: list[str]) -> None:
    acs = open_sqlite_acs(f"sqlite:{path}", reactor, demo=True, hash_iterations=1000)

    def report(result: m.CirculationResult) -> None:
        print(("ok " if result.ok else "refused ") + result.item_id, flush=True)

    def start() -> None:
        acs.start()
        for item in items:
            request = rq.CheckoutRequest(patron_id="100001", item_id=item, patron_pin="1234")
            acs.checkout(TERMINAL, request).addCallback(report)
        print("started", flush=True)

    reactor.callWhenRunning(start)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
