"""Offline store-and-forward for the upstream backend: the journal (journal.py, in the
gateway's database), the wrapper that answers while the library system is down (acs.py,
session.py, answers.py), the replay when it is back (replay.py), and the operator's report
and export files (cli.py, export.py)."""
