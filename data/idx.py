"""Offline reader for MNIST / Fashion-MNIST idx files (raw or .gz).

File names: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (the
``train-images.idx3-ubyte`` spelling is accepted too).  The idx header is
parsed here: 2 zero bytes, a type byte (0x08 = uint8), a rank byte, then one
big-endian uint32 per dimension.  Images must have magic 0x00000803
([N, H, W]) and labels 0x00000801 ([N]); the file length must equal the
header plus the payload, and image and label counts must agree.  Any
mismatch raises DatasetError naming the file.
"""

import gzip
import hashlib
import logging
import struct
import zlib
from pathlib import Path

import numpy as np

from data.catalog import IDX_MD5
from data.errors import DatasetError
from data.raw import RawSplit

logger = logging.getLogger(__name__)

IMAGES_MAGIC = 0x00000803  # uint8, rank 3
LABELS_MAGIC = 0x00000801  # uint8, rank 1
_PREFIX = {"train": "train", "test": "t10k"}
_GZIP_MAGIC = b"\x1f\x8b"


def _candidates(split: str, kind: str):
    """File names for `kind` in ('images', 'labels') of `split`, preferred first."""
    rank = "3" if kind == "images" else "1"
    prefix = _PREFIX[split]
    stems = [f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte"]
    return [stem + ext for stem in stems for ext in (".gz", "")]


def _find_file(directory: Path, split: str, kind: str) -> Path | None:
    for file_name in _candidates(split, kind):
        if (directory / file_name).is_file():
            return directory / file_name
    return None


def find(search_dirs, split: str) -> Path | None:
    """First directory holding both the image and the label file of `split`."""
    for directory in search_dirs:
        if _find_file(directory, split, "images") and _find_file(directory, split, "labels"):
            return directory
    return None


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as stream:
        raw = stream.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: corrupt gzip data ({error}); re-download the file") from error


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one idx file and check it has the expected `magic`; returns uint8 [dims]."""
    path = Path(path)
    raw = _read_bytes(path)
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(raw) < 4:
        raise DatasetError(f"{path}: {len(raw)} bytes, too short for an idx header")
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        raise DatasetError(f"{path}: idx magic 0x{found:08x}, expected 0x{magic:08x} "
                           f"(uint8 {kind}, rank {magic & 0xFF}); not an idx {kind} file")
    rank = magic & 0xFF
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated idx header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{rank}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise DatasetError(f"{path}: {len(raw)} bytes but the header {dims} needs {expected}: "
                           f"the file is truncated or damaged; re-download it")
    if rank == 3 and (dims[1] == 0 or dims[2] == 0):
        raise DatasetError(f"{path}: image size {dims[1:]} is empty")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _note_md5(path: Path, name: str) -> None:
    """Informational only: Debian and others recompress the official .gz files."""
    expected = IDX_MD5.get(name, {}).get(path.name)
    if expected is None:
        return
    actual = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    if actual != expected:
        logger.info("%s: md5 %s is not the official %s (repacked copy); its idx structure "
                    "was validated instead", path, actual, expected)


def load(name: str, directory: Path, split: str, class_names, limit: int | None = None
         ) -> RawSplit:
    """Read `split` from the idx files in `directory` -> uint8 [N, H, W, 1], int32 [N]."""
    image_path = _find_file(directory, split, "images")
    label_path = _find_file(directory, split, "labels")
    if image_path is None or label_path is None:
        raise DatasetError(f"{directory}: missing {_candidates(split, 'images')[0]} or "
                           f"{_candidates(split, 'labels')[0]}")
    for path in (image_path, label_path):
        _note_md5(path, name)
    images = read_idx(image_path, IMAGES_MAGIC)  # [N, H, W]
    labels = read_idx(label_path, LABELS_MAGIC)  # [N]
    if len(images) != len(labels):
        raise DatasetError(f"{image_path} holds {len(images)} images but {label_path} holds "
                           f"{len(labels)} labels; the files do not belong together")
    if labels.size and labels.max() >= len(class_names):
        raise DatasetError(f"{label_path}: label {labels.max()} outside "
                           f"[0, {len(class_names)})")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return RawSplit(images[..., None], labels.astype(np.int32), list(class_names),
                    f"idx files in {directory}")
