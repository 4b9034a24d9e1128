"""Evento benchmarks: each figure measured side by side with its baseline, in one run, on one disk.

Run with ``make bench`` (or ``.venv/bin/python -m bench``); ``--quick`` for a smoke run, ``--only NAME`` for one
benchmark. The table goes to stdout and the figures to ``.bench/results.json``::

    {"figures": [{"name", "value", "unit", "baseline", "baseline_value", "ratio"}, ...], "details": {...}}

Modules:

* :mod:`bench.command_throughput` — TodoList commands/s through the gateway vs ``eventsourcing``'s
  ``Application.save`` on SQLite.
* :mod:`bench.projection_latency` — commit-to-projector-handler latency (p50, p99) vs a 10 ms target.
* :mod:`bench.store_append` — ``SQLiteEventStore`` group-committed appends vs raw ``sqlite3`` ``executemany``.
"""
