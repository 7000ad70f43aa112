"""The states of a SIP2 session.

::

    AWAITING_LOGIN --93 ok / door's account found--> READY
    (new session)  --door names an account--------> BINDING --lookup answered--> READY or AWAITING_LOGIN
    READY or AWAITING_LOGIN --request--> BUSY --its reply sent--> READY or AWAITING_LOGIN
    any --connection lost, idle, login time out, abuse--> CLOSED

Input that arrives while BINDING or BUSY waits in the session's one queue.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    AWAITING_LOGIN = "awaiting login"    # no account yet: only a 93 is served
    BINDING = "binding an account"       # the door's account is being looked up
    READY = "ready"                      # logged in, nothing in progress
    BUSY = "busy"                        # one request in progress
    CLOSED = "closed"                    # nothing more is read or written


#: states in which new input waits in the queue
WAITING = (State.BINDING, State.BUSY)
