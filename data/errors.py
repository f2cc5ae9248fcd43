"""The one exception type of the data package.

Every bad input (unknown name, missing or corrupt files, unsafe pickles, bad
arguments) raises :class:`DatasetError`.  Its message names the problem and
says how to fix it.  It subclasses ``ValueError`` so callers that already
catch ``ValueError`` keep working.
"""


class DatasetError(ValueError):
    """Raised for every bad-input case; message names the problem and the fix."""
