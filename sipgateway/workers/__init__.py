"""Worker processes: ``--workers N`` serves every listener from N processes.

The parent (parent.py) binds every shareable listener's port once and holds it without
accepting (ports.py); each worker process (child.py) adopts those sockets and runs the
whole gateway as a single-process gateway does, so the kernel hands each new connection to
whichever worker accepts it first.  The supervisor (supervisor.py) starts the workers,
relays their log events, forwards SIGHUP to them and starts a dead one again with growing
pauses.
"""
