"""The ``kvmplace`` command line: a cliff app, one module per command group.

Commands are entry points in the ``kvmplace.cli`` namespace. Each prints a
readable table by default and the ARCHITECTURE "CLI" JSON with ``-f json``.
"""
