"""`make bench`: our load generator (loadgen.c), the ceiling server and the benchmark runner.

Run ``python bench/run.py --help``.  Nothing here is part of the installed gateway.
"""
