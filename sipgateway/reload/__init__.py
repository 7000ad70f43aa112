"""Reloading the configuration while the gateway runs (SIGHUP, ``systemctl reload``).

A reload reads the configuration again as start-up did (the same file, the same command
line), checks everything before it changes anything, then applies it part by part.  A
part is one function and one line in ``PARTS`` (machinery.py): what it checks and what
it applies.  Any problem refuses the whole reload with one log line, and the configuration
in force stays; settings that no part applies are named in a warning as taking effect at
the next restart.  Sessions that are open keep the settings they started with; new ones
get the new settings.
"""

from sipgateway.reload.machinery import PARTS, Change, Part, Reloader, Running

__all__ = ["PARTS", "Change", "Part", "Reloader", "Running"]
