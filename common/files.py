"""Writers for everything a run leaves on disk. Every file is written whole or not at all.

Each writer renders into a temporary file in the destination's folder and
renames it over the destination (``os.replace`` is atomic on POSIX), so a run
killed mid-write leaves the previous version, never half a file.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
import sys
import tempfile

import numpy as np

from common.config import dumps


def _umask() -> int:
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class DiskFull(OSError):
    """No space was left where a file was being written; the message names the folder and
    its free space. Files are written whole or not at all (here and in the trainer's
    checkpoints), so what was written before is intact."""


_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_WORDS = ("No space left on device", "Disk quota exceeded")


def is_disk_full(err) -> bool:
    """True for an error that says the disk (or the user's quota) is full: an OSError
    with ENOSPC/EDQUOT, or TensorFlow's error for it (a ResourceExhaustedError naming
    the file and "No space left on device")."""
    if isinstance(err, DiskFull):
        return True
    if isinstance(err, OSError) and err.errno in _FULL:
        return True
    return any(words in str(err) for words in _FULL_WORDS)


def free_space(folder) -> str:
    """The free space on the device holding ``folder`` (or its nearest existing parent),
    in words."""
    probe = os.path.abspath(os.fspath(folder))
    while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return "free space unknown"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if free >= size:
            return f"{free / size:.1f} {unit} free"
    return f"{free} bytes free"


def disk_full(folder, what="a file") -> DiskFull:
    """The one-line error for a full disk while writing ``what`` in ``folder``."""
    return DiskFull(f"no space left on the device holding {os.path.abspath(folder)} "
                    f"({free_space(folder)}) while writing {what}; nothing was lost (every "
                    f"file and checkpoint is written whole or not at all): free some space "
                    f"and rerun the same command")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    mkstemp creates the temporary file with mode 0600 whatever the umask; the file
    gets the mode a plain ``open()`` would have given it (0666 less the umask) before
    it is renamed into place, so reports stay readable by whoever may read the folder.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-",
                                   suffix=os.path.splitext(path)[1])
        os.close(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        if is_disk_full(err) and not isinstance(err, DiskFull):
            raise disk_full(folder, os.path.basename(path)) from err
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text: str):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path, obj):
    write_text(path, dumps(obj))


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_csv(path, rows: list[dict], columns: list[str] | None = None, *,
              exact: bool = False):
    """Rows as CSV. Floats get 6 significant figures (tables for people to read), or with
    ``exact`` their shortest exact form, for files read back as data (history.csv: a run
    resumed after its last epoch reports its losses from it)."""
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k), exact) for k in columns})
    write_text(path, buf.getvalue())


def _csv_cell(value, exact=False):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if exact else f"{value:.6g}"
    return value


def unencodable_name(path) -> str | None:
    """Why TensorFlow could not take ``path`` (its file functions take UTF-8 text), or None.

    A name that is not valid in the locale's encoding (a byte such as 0xE9 under
    ``LC_ALL=C``, or a Latin-1 name under a UTF-8 locale) reaches Python as text with
    lone surrogates: Python's own file calls manage, TensorFlow's (checkpoints, TensorBoard)
    fail mid-run."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return (f"the name {ascii(os.fspath(path))} is not valid text in this locale's "
                f"encoding ({sys.getfilesystemencoding()}), and TensorFlow takes only UTF-8 "
                f"names: use a path of ASCII characters, or a UTF-8 locale (LC_ALL=C.UTF-8)")
    except (TypeError, AttributeError):  # bytes: valid UTF-8 or not, TensorFlow reads bytes
        return None
    return None


def writable_dir_problem(folder) -> str | None:
    """Why no file could be written in ``folder`` (which may not exist yet), or None.

    Probes with a temporary file in the folder, or in its nearest existing parent when
    it is still to be made (nothing is left behind): a file in the way, a read-only
    mount and missing permissions all show here rather than at a run's first write.
    """
    name_problem = unencodable_name(folder)
    if name_problem:
        return name_problem
    probe = os.path.abspath(os.fspath(folder))
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return f"{probe} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        return f"cannot write in {probe} ({err.strerror or err})"
    return None


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def to_uint8(images) -> np.ndarray:
    """Images in [-1, 1] -> uint8 [0, 255] (round half up, clipped)."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.floor((images + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)


def image_grid(images_uint8: np.ndarray, columns: int) -> np.ndarray:
    """[n, H, W, C] uint8 -> one [rows*(H+1)-1, columns*(W+1)-1, C] mosaic with 1-px gutters."""
    n, h, w, c = images_uint8.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1, c), 255, np.uint8)
    for i, image in enumerate(images_uint8):
        r, col = divmod(i, columns)
        grid[r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = image
    return grid


def write_png(path, array_uint8: np.ndarray, scale: int = 1):
    from PIL import Image

    if array_uint8.shape[-1] == 1:
        array_uint8 = array_uint8[..., 0]
    image = Image.fromarray(array_uint8)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def write_npz(path, **arrays):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
