"""The test bench: simulated model and Magento endpoints and a worker harness.

Not product code. Product modules never import it (tests/unit/test_import_boundaries.py);
only the CLI registers its commands, lazily, so `catalogflow simulator ...` and
`catalogflow demo` stay one command away.
"""
