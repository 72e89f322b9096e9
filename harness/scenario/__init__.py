"""Scenario files: shared types (:mod:`.types`), the models assembled from the verb registry
(:mod:`.models`), the loader with file:line:column errors (:mod:`.loader`) and the JSON Schema
for editors (:mod:`.schema`).

``load``, ``load_all``, ``find_files``, ``LoadedScenario`` and ``ScenarioError`` are the
loader's, imported on first use (the verb families import :mod:`.types` without the loader).
"""

__all__ = ["LoadedScenario", "ScenarioError", "find_files", "load", "load_all"]


def __getattr__(name):
    if name in __all__:
        from harness.scenario import loader
        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
