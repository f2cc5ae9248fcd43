"""A restricted unpickler for the CIFAR "python version" files.

The CIFAR files are pickles.  ``pickle.load`` on a pickle runs whatever code
the pickle names, so they are never loaded with it.  :func:`safe_load` only
lets a pickle reference the three globals that the real files need to rebuild
their numpy arrays (``numpy.core.multiarray._reconstruct`` -- spelled
``numpy._core.multiarray`` by numpy 2 --, ``numpy.ndarray`` and
``numpy.dtype``); dicts, lists, str/bytes and ints need no globals at all.
Anything else (``os.system``, ``builtins.eval``, ``numpy._core.numeric.
_frombuffer`` from protocol-5 pickles, ...) is refused with a DatasetError.
"""

import pickle
import tarfile
import zlib

import numpy as np

from data.errors import DatasetError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _Refused(Exception):
    """Internal: the pickle asked for something outside ALLOWED_GLOBALS."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose only importable names are ALLOWED_GLOBALS."""

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise _Refused(f"persistent id {pid!r}")


def safe_load(fileobj, source: str, fix: str):
    """Unpickle `fileobj` (named `source` in errors) with RestrictedUnpickler.

    Python-2 pickles (the official CIFAR files) are read with
    ``encoding='latin1'``, which numpy needs for their array bytes.  `fix` is
    appended to error messages (e.g. where to re-download the file).
    """
    try:
        return RestrictedUnpickler(fileobj, encoding="latin1").load()
    except _Refused as refused:
        raise DatasetError(
            f"{source}: refused as unsafe: the pickle references {refused}, which a "
            f"dataset file never needs (only numpy arrays, lists, dicts, strings and "
            f"ints are allowed); do not open it with pickle. {fix}") from None
    except (DatasetError, OSError, tarfile.TarError, zlib.error):
        raise  # I/O errors belong to the container (e.g. a truncated archive)
    except Exception as error:  # garbled pickle: UnpicklingError, EOFError, ...
        raise DatasetError(f"{source}: corrupt or truncated pickle ({type(error).__name__}: "
                           f"{error}). {fix}") from error
