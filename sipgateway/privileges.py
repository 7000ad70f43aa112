"""Doing start-up file work as the user the gateway will run as (twistd's ``--uid``/``--gid``).

twistd calls the plugin's ``makeService`` as root, then ``privilegedStartService``, then drops
privileges, then ``startService``.  The database file is created, migrated and seeded, and
the config's accounts written, in ``makeService`` so that every problem is a one-line
start-up error; doing that as root made a root-owned file that the gateway (and its database
process, started after the drop) could only read.  So that work runs with the effective
user and groups switched to the target user, and switched back afterwards (possible
because the real user stays root): files come out owned by that user, and a directory or file
that user cannot write is an error at start-up, exactly as the gateway would meet it.
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sipgateway

#: (uid, gid) that twistd will switch to; None for "no change"
RunAs = tuple[int | None, int | None]


class CannotRunAs(ValueError):
    """The user given to --uid cannot run this gateway (its interpreter or its code)."""


def twistd_user(options) -> RunAs:
    """The uid and gid twistd will switch to after ``makeService``, from its own options
    (the plugin's options' ``parent``), with twistd's rule for a missing --gid."""
    parent = getattr(options, "parent", None)
    if parent is None:
        return None, None
    uid, gid = parent.get("uid"), parent.get("gid")
    if uid is not None and gid is None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = None
    return uid, gid


def _groups_of(uid: int, gid: int) -> list[int]:
    try:
        return os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except KeyError:  # a uid without a passwd entry: twistd gives it only its gid
        return [gid]


@contextmanager
def acting_as(uid: int | None, gid: int | None) -> Iterator[None]:
    """Within the block, files are created and checked as ``uid``/``gid`` (effective ids and
    supplementary groups); a no-op unless this process is root and a change was asked."""
    if os.geteuid() != 0 or (uid in (None, 0) and gid is None):
        yield
        return
    saved_groups, saved_egid = os.getgroups(), os.getegid()
    try:
        if uid not in (None, 0):
            os.setgroups(_groups_of(uid, gid if gid is not None else pwd.getpwuid(uid).pw_gid))
        if gid is not None:
            os.setegid(gid)
        if uid not in (None, 0):
            os.seteuid(uid)
        yield
    finally:
        os.seteuid(0)
        os.setegid(saved_egid)
        os.setgroups(saved_groups)


def check_can_run(uid: int | None) -> None:
    """Inside ``acting_as``: the interpreter and this package must be usable by the user,
    or the database process (started after the drop) could never run."""
    if uid in (None, 0) or os.geteuid() != uid:
        return
    package = Path(sipgateway.__file__).resolve().parent
    for what, path, mode in (("the Python interpreter", sys.executable, os.X_OK),
                             ("the sipgateway package", str(package), os.R_OK | os.X_OK)):
        if not os.access(path, mode, effective_ids=True):
            raise CannotRunAs(f"--uid {uid}: {what} {path} cannot be used by that user; the interpreter and the "
                              "virtualenv must be readable by the user given to --uid (install them outside "
                              "/root, e.g. a venv made with /usr/bin/python3 under /opt)")
