"""The suite's version: run records carry it (config.json "suite_version"), CITATION.cff names it.

Bumped when a change alters what a run produces or how it is scored; a test keeps this and
CITATION.cff in step.
"""
__version__ = "0.10.0"
