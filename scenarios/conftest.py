"""`pytest scenarios/` runs every scenario file here on every engine it names (one item each).

The hooks are :mod:`harness.pytest_plugin`'s; options ``--capsize-engine NAME`` (repeatable),
``--capsize-out DIR``, ``--capsize-keep-going``. Needs root, like ``capsize run``.
"""

from harness.pytest_plugin import (pytest_addoption, pytest_collect_file, pytest_configure,  # noqa: F401
                                   pytest_sessionfinish)
