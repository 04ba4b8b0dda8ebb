"""The ``kvmplace`` command line: a cliff app, one module per command group.

Commands are entry points in the ``kvmplace.cli`` namespace, cliff Listers
and ShowOnes (base.py): a readable table by default, the ARCHITECTURE
"CLI" JSON with ``-f json``, rows with ``-c``. Around them: client.py
(the conductor over RPC), backend.py (offline inventory or conductor),
options.py, render.py (safe text), explain.py, progress.py.
"""
