"""Offline reader for the official CIFAR-10 / CIFAR-100 "python version" files.

Accepted layouts inside a search directory:

* ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` -- read in one
  streaming pass with :mod:`tarfile`, nothing is extracted to disk, members
  with absolute paths or ``..`` are refused;
* the extracted folders ``cifar-10-batches-py/`` / ``cifar-100-python/``.

The batch files are pickles, read only through :mod:`data.safe_pickle`.
Each batch holds ``data``: uint8 [N, 3072] in CHW order (reshaped to
[N, 3, 32, 32] and transposed to HWC) and ``labels`` (CIFAR-10) or
``fine_labels`` (CIFAR-100).  Class names come from ``batches.meta``
(``label_names``) or ``meta`` (``fine_label_names``).

A tarball whose md5 differs from the published one only logs a warning
(users repack archives); one that cannot be read is a DatasetError.
"""

import hashlib
import logging
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from data.catalog import CIFAR_MD5, CIFAR_URLS
from data.errors import DatasetError
from data.raw import RawSplit
from data.safe_pickle import safe_load

logger = logging.getLogger(__name__)

LAYOUT = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": "labels",
        "names_key": "label_names",
        "num_classes": 10,
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": "fine_labels",
        "names_key": "fine_label_names",
        "num_classes": 100,
    },
}

_ROW = 3 * 32 * 32  # one CIFAR image, CHW


def find(name: str, search_dirs) -> Path | None:
    """First archive or extracted folder for `name` in `search_dirs`, else None."""
    layout = LAYOUT[name]
    for directory in search_dirs:
        archive, folder = directory / layout["archive"], directory / layout["folder"]
        if archive.is_file():
            return archive
        if folder.is_dir():
            return folder
    return None


def load(name: str, path: Path, split: str, limit: int | None = None) -> RawSplit:
    """Read one split of CIFAR `name` from an archive or extracted folder."""
    layout = LAYOUT[name]
    wanted = layout[split] + [layout["meta"]]
    if path.is_dir():
        pickles = _read_folder(path, wanted, name)
    else:
        _check_md5(path)
        pickles = _read_archive(path, wanted, name)
    names = _class_names(pickles[layout["meta"]], layout, path)
    images, labels = [], []
    for member in layout[split]:
        batch_images, batch_labels = _parse_batch(pickles[member], layout, f"{path}:{member}")
        images.append(batch_images)
        labels.append(batch_labels)
    images, labels = np.concatenate(images), np.concatenate(labels)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return RawSplit(images, labels, names, f"CIFAR python files in {path}")


def _fix(name: str) -> str:
    return f"Re-download {CIFAR_URLS[name]}."


def _check_md5(path: Path) -> None:
    expected = CIFAR_MD5.get(path.name)
    if expected is None:
        return
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        logger.warning("%s: md5 %s differs from the official %s (repacked archive?); "
                       "reading it anyway", path, digest.hexdigest(), expected)


def _safe_member_name(member_name: str, archive: Path) -> str:
    """Basename of a tar member; refuses absolute paths and '..'."""
    pure = PurePosixPath(member_name)
    if pure.is_absolute() or ".." in pure.parts or member_name.startswith("\\"):
        raise DatasetError(f"{archive}: refused: archive member {member_name!r} has an "
                           f"absolute path or '..'; use the official archive")
    return pure.name


def _read_archive(archive: Path, wanted, name: str) -> dict:
    """One streaming pass over the tarball; unpickles the members in `wanted`."""
    found = {}
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                base = _safe_member_name(member.name, archive)
                if member.isfile() and base in wanted and base not in found:
                    stream = tar.extractfile(member)
                    found[base] = safe_load(stream, f"{archive}:{member.name}", _fix(name))
    except DatasetError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DatasetError(f"{archive}: corrupt or truncated archive ({type(error).__name__}: "
                           f"{error}). {_fix(name)}") from error
    missing = [m for m in wanted if m not in found]
    if missing:
        raise DatasetError(f"{archive}: archive lacks {missing}; it is not the "
                           f"{LAYOUT[name]['archive']} layout. {_fix(name)}")
    return found


def _read_folder(folder: Path, wanted, name: str) -> dict:
    found = {}
    for member in wanted:
        path = folder / member
        if not path.is_file():
            raise DatasetError(f"{folder}: missing file {member}; the folder must be the "
                               f"extracted {LAYOUT[name]['archive']}. {_fix(name)}")
        with open(path, "rb") as stream:
            found[member] = safe_load(stream, str(path), _fix(name))
    return found


def _as_str(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _get(batch, key: str, source: str):
    if not isinstance(batch, dict):
        raise DatasetError(f"{source}: expected a dict, got {type(batch).__name__}")
    for candidate in (key, key.encode()):  # str keys (latin1) or bytes keys
        if candidate in batch:
            return batch[candidate]
    raise DatasetError(f"{source}: has no {key!r} entry (keys: {sorted(map(_as_str, batch))})")


def _class_names(meta, layout, path: Path) -> list:
    names = [_as_str(n) for n in _get(meta, layout["names_key"], f"{path}:{layout['meta']}")]
    if len(names) != layout["num_classes"]:
        raise DatasetError(f"{path}:{layout['meta']}: {len(names)} class names, expected "
                           f"{layout['num_classes']}")
    return names


def _parse_batch(batch, layout, source: str):
    """dict -> (uint8 [N, 32, 32, 3] HWC, int32 [N])."""
    data = _get(batch, "data", source)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DatasetError(f"{source}: 'data' must be a uint8 numpy array")
    if data.ndim != 2 or data.shape[1] != _ROW:
        raise DatasetError(f"{source}: 'data' has shape {data.shape}; CIFAR rows hold "
                           f"{_ROW} bytes (3x32x32)")
    labels = np.asarray(_get(batch, layout["label_key"], source))
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{source}: {labels.shape} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= layout["num_classes"]):
        raise DatasetError(f"{source}: labels outside [0, {layout['num_classes']})")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW -> HWC
    return np.ascontiguousarray(images), labels.astype(np.int32)
