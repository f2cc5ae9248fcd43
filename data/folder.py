"""``folder:PATH``: a directory of image files as a dataset.

* Every ``.png .jpg .jpeg .bmp .webp`` file under PATH (recursive, sorted by
  relative path) is an example.
* If PATH has subfolders that contain images, each top-level subfolder is a
  class (``class_names`` = sorted subfolder names; images deeper down belong
  to their top-level subfolder).  Otherwise there is one class, named after
  PATH.  Images lying directly in PATH next to class subfolders are an error.
* Splits: about 10% of the files are held out as ``test``, chosen by the md5
  of the relative path (so a file keeps its split when others are added);
  ``train`` is everything else.
* Images are read with PIL, converted to RGB (or gray for ``channels=1``),
  centre-cropped to a square and resized with PIL's antialiased bilinear
  filter.  16-bit gray images are scaled to 8 bits (not clipped).  An unreadable
  file raises DatasetError naming it.
"""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from data.errors import DatasetError
from data.raw import RawSplit

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
TEST_PERCENT = 10


def scan(root: Path) -> list:
    """Sorted relative POSIX paths of the image files under `root`."""
    found = []
    for directory, _subdirs, files in os.walk(root):
        for file_name in files:
            if Path(file_name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append((Path(directory) / file_name).relative_to(root).as_posix())
    return sorted(found)


def split_of(relative_path: str) -> str:
    """'test' for about TEST_PERCENT% of paths (by md5 of the path), else 'train'."""
    digest = hashlib.md5(relative_path.encode("utf-8"), usedforsecurity=False).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < TEST_PERCENT else "train"


def _classes(root: Path, paths: list):
    """(class_names, label per path)."""
    nested = [p for p in paths if "/" in p]
    if not nested:
        return [root.name or str(root)], [0] * len(paths)
    top_level = [p for p in paths if "/" not in p]
    if top_level:
        raise DatasetError(f"{root}: has both class subfolders and {len(top_level)} images at "
                           f"its top level (e.g. {top_level[0]}); move those into a subfolder")
    class_names = sorted({p.split("/", 1)[0] for p in paths})
    index = {name: i for i, name in enumerate(class_names)}
    return class_names, [index[p.split("/", 1)[0]] for p in paths]


def _eight_bit(image, path: Path):
    """16-bit gray images ('I;16*', or 'I' as PIL opens some) scaled to 8 bits.

    PIL's convert('L') clips them at 255, which turns all but the darkest 0.4% of a
    0..65535 range white; here 65535 -> 255 with rounding (x * 255 / 65535).
    """
    if not (image.mode.startswith("I;16") or image.mode == "I"):
        return image
    values = np.asarray(image).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DatasetError(f"{path}: integer pixels span {values.min()}..{values.max()}, beyond "
                           f"16 bits; convert the image to 8 or 16 bits per channel")
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))  # mode L


def read_image(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One file -> uint8 [image_size, image_size, channels]."""
    try:
        with Image.open(path) as image:
            image = _eight_bit(image, path).convert("L" if channels == 1 else "RGB")
            width, height = image.size
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            if side != image_size:
                image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except DatasetError:
        raise
    except Exception as error:  # PIL raises OSError, ValueError, DecompressionBombError, ...
        raise DatasetError(f"{path}: cannot be read as an image ({type(error).__name__}: "
                           f"{error}); remove or replace the file") from error
    return pixels[..., None] if channels == 1 else pixels


def load(root: Path, split: str, image_size: int, channels: int, limit: int | None = None
         ) -> RawSplit:
    """Read `split` of the image folder `root` at the final size."""
    if not root.is_dir():
        raise DatasetError(f"folder dataset {root} is not a directory")
    paths = scan(root)
    if not paths:
        raise DatasetError(f"{root}: no {sorted(IMAGE_EXTENSIONS)} images found")
    class_names, labels = _classes(root, paths)
    chosen = [(p, y) for p, y in zip(paths, labels) if split_of(p) == split]
    if not chosen:
        raise DatasetError(f"{root}: split {split!r} is empty ({len(paths)} images in all; "
                           f"the 'test' split holds about {TEST_PERCENT}% of them)")
    if limit is not None:
        chosen = chosen[:limit]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(lambda item: read_image(root / item[0], image_size, channels),
                               chosen))
    return RawSplit(np.stack(images), np.asarray([y for _, y in chosen], np.int32),
                    class_names, f"image folder {root} ({split}: {len(chosen)} of "
                                 f"{len(paths)} files)")
