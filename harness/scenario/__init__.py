"""Scenario files: typed models (:mod:`.models`), the loader with file:line:column errors
(:mod:`.loader`) and the JSON Schema for editors (:mod:`.schema`)."""

from harness.scenario.loader import LoadedScenario, ScenarioError, find_files, load, load_all

__all__ = ["LoadedScenario", "ScenarioError", "find_files", "load", "load_all"]
