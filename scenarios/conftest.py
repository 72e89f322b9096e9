"""`pytest scenarios/` runs every scenario file here on every engine it names (one item each).

The hooks are :mod:`harness.pytest_plugin`'s, registered for every pytest of this environment by
the ``pytest11`` entry point ``capsize`` in pyproject.toml (nothing to import here: importing the
hooks again would register them twice). Options ``--capsize-engine NAME`` (repeatable),
``--capsize-out DIR``, ``--capsize-keep-going``. Needs root, like ``capsize run``.
"""
