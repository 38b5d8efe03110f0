"""ContainerLease benchmarks: every figure is a ratio against a reference measured in the same run.

Run them with ``scripts/bench`` (see ``docs/benchmarks.md``). They print a table, write
``benchmarks/results/*.json`` and regenerate ``docs/benchmarks.md``; they are not tests and never
fail the test suite.
"""
