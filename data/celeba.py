"""CelebA from the official ``img_align_celeba`` JPEGs (a folder or ``img_align_celeba.zip``),
with thesis 003's preprocessing.

Thesis 003 (appendix 1) crops each 178x218 aligned image with the box (0, 15, 178, 193) (its
ORIG_HEIGHT = 208 gives diff = 15) and shrinks it with PIL's antialiased ``thumbnail`` to
64x64 (here ``image_size``). Splits follow CelebA's official partition, which numbers the
files 000001.jpg..202599.jpg: train 1-162770, validation 162771-182637, test 182638-202599.
Every file is decoded when the split is opened, so a truncated or unreadable JPEG is an
error naming it before anything trains.
"""
from __future__ import annotations

import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from data.errors import DatasetError
from data.raw import RawSplit

FOLDER = "img_align_celeba"
ZIP = "img_align_celeba.zip"
THESIS_CROP = (0, 15, 178, 193)
SPLIT_RANGES = {"train": (1, 162770), "validation": (162771, 182637), "test": (182638, 202599)}


def find(data_dir: Path | None):
    """The folder or zip holding the JPEGs: ``data_dir`` itself (a zip, or a folder of JPEGs
    named img_align_celeba), or ``img_align_celeba[.zip]`` in data_dir or data_dir/celeb_a;
    None when there is none."""
    if data_dir is None:
        return None
    if data_dir.is_file():
        return data_dir if data_dir.suffix.lower() == ".zip" else None
    if data_dir.name == FOLDER:
        return data_dir
    for base in (data_dir, data_dir / "celeb_a"):
        for candidate in (base / FOLDER, base / ZIP):
            if candidate.exists():
                return candidate
    return None


def thesis_preprocess(image: Image.Image, image_size: int, channels: int) -> np.ndarray:
    """crop(THESIS_CROP) then thumbnail((size, size), antialiased): uint8 [size, size, C]."""
    image = image.convert("L" if channels == 1 else "RGB").crop(THESIS_CROP)
    image.thumbnail((image_size, image_size), Image.Resampling.LANCZOS)  # PIL's ANTIALIAS
    if image.size != (image_size, image_size):  # a non-square crop (not CelebA's 178x218)
        image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def _number(name: str):
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None


def _members(source: Path) -> list:
    """Sorted names of the JPEGs in the folder or zip."""
    if source.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(source) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise DatasetError(f"{source} is not a readable zip ({err}); download "
                               f"img_align_celeba.zip again") from err
    else:
        names = os.listdir(source)
    return sorted(n for n in names if n.lower().endswith((".jpg", ".jpeg")))


def _decode(data: bytes, where: str, image_size: int, channels: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a truncated JPEG fails here ("image file is truncated")
            return thesis_preprocess(image, image_size, channels)
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise DatasetError(f"{where}: cannot be read as a JPEG ({type(error).__name__}: "
                           f"{error}); replace it with the file from img_align_celeba.zip "
                           f"or remove it") from error


def load(source: Path, split: str, image_size: int, channels: int, limit: int | None = None
         ) -> RawSplit:
    """Decode ``split`` of the official JPEGs with the thesis's crop and thumbnail."""
    names = _members(source)
    if not names:
        raise DatasetError(f"{source} holds no JPEGs; put CelebA's img_align_celeba/*.jpg "
                           f"(from img_align_celeba.zip) there")
    low, high = SPLIT_RANGES[split]
    numbered = [(n, _number(n)) for n in names]
    unnamed = [n for n, k in numbered if k is None]
    if unnamed:
        raise DatasetError(f"{source}: {unnamed[0]} is not named like CelebA's files "
                           f"(000001.jpg ... 202599.jpg), which fix the official splits")
    chosen = [n for n, k in numbered if low <= k <= high]
    if not chosen:
        raise DatasetError(f"{source}: no {split} images (CelebA numbers {low}-{high}) among "
                           f"its {len(names)} JPEGs")
    if limit is not None:
        chosen = chosen[:limit]
    if source.suffix.lower() == ".zip":
        with zipfile.ZipFile(source) as archive:
            blobs = [(archive.read(n), f"{source}:{n}") for n in chosen]
    else:
        blobs = [((source / n).read_bytes(), str(source / n)) for n in chosen]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(lambda b: _decode(b[0], b[1], image_size, channels), blobs))
    return RawSplit(np.stack(images), np.zeros(len(images), np.int32), ["face"],
                    f"CelebA JPEGs {source} ({split}: {len(chosen)} images, crop "
                    f"{THESIS_CROP}, antialiased thumbnail {image_size}x{image_size})")
