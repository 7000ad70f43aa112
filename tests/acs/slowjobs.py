"""Jobs for the database process that wait for the test: imported by the child (the
repository root is on its path), so nothing of the kind is in the product.

``gated_checkout`` is a checkout that, once inside its transaction, creates the file
``<gate>.started`` and then waits until the test writes a byte into the FIFO ``gate``;
``count_to`` is a read as slow as the test asks.
"""

from __future__ import annotations

import os
from pathlib import Path

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import loans
from sipgateway.acs.sqlite.context import Tx


def gated_checkout(tx: Tx, request: rq.CheckoutRequest, gate: str) -> m.CirculationResult:
    assert tx.conn.in_transaction
    Path(gate + ".started").touch()
    fd = os.open(gate, os.O_RDONLY)   # blocks until the test opens the FIFO to write
    try:
        os.read(fd, 1)
    finally:
        os.close(fd)
    return loans.checkout(tx, request)


class Gate:
    """The test's side: a FIFO the job waits on."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "gate")
        os.mkfifo(self.path)

    @property
    def entered(self) -> bool:
        return os.path.exists(self.path + ".started")

    def open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)   # the job has it open for reading: does not block
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)


def count_to(tx: Tx, n: int) -> int:
    """A read that takes as long as the test likes: SQLite counts to ``n``."""
    return tx.value("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?) "
                    "SELECT count(*) FROM c", n)
