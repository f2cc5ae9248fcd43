"""The CIFAR "python version" files, read with the restricted unpickler.

The CIFAR files are pickles.  ``pickle.load`` on a pickle runs whatever code
the pickle names, so they are never loaded with it.  :func:`safe_load` reads them
with ``common.safe_pickle.RestrictedUnpickler`` and only
lets a pickle reference the three globals that the real files need to rebuild
their numpy arrays (``numpy.core.multiarray._reconstruct`` -- spelled
``numpy._core.multiarray`` by numpy 2 --, ``numpy.ndarray`` and
``numpy.dtype``); dicts, lists, str/bytes and ints need no globals at all.
Anything else (``os.system``, ``builtins.eval``, ``numpy._core.numeric.
_frombuffer`` from protocol-5 pickles, ...) is refused with a DatasetError.
"""

import tarfile
import zlib

import numpy as np

from common.safe_pickle import RefusedGlobal, RestrictedUnpickler
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


def safe_load(fileobj, source: str, fix: str):
    """Unpickle `fileobj` (named `source` in errors), allowing only ALLOWED_GLOBALS.

    Python-2 pickles (the official CIFAR files) are read with
    ``encoding='latin1'``, which numpy needs for their array bytes.  `fix` is
    appended to error messages (e.g. where to re-download the file).
    """
    try:
        return RestrictedUnpickler(fileobj, ALLOWED_GLOBALS, encoding="latin1").load()
    except RefusedGlobal as refused:
        raise DatasetError(
            f"{source}: refused as unsafe: the pickle references {refused}, which a "
            f"dataset file never needs (only numpy arrays, lists, dicts, strings and "
            f"ints are allowed); do not open it with pickle. {fix}") from None
    except (DatasetError, OSError, tarfile.TarError, zlib.error):
        raise  # I/O errors belong to the container (e.g. a truncated archive)
    except Exception as error:  # garbled pickle: UnpicklingError, EOFError, ...
        raise DatasetError(f"{source}: corrupt or truncated pickle ({type(error).__name__}: "
                           f"{error}). {fix}") from error
