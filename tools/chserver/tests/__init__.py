"""Tests of chserver, one module per concept of the package (test_auth,
test_compression, test_engine, test_errors, test_query, test_server), each
against real server subprocesses (support.py).

Run all: .venv/bin/python -m unittest discover -s tools/chserver -v
One module: .venv/bin/python -m unittest discover -s tools/chserver -p test_engine.py -v
(the venv comes from scripts/setup-python.sh).
"""
