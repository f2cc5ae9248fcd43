"""Metrics between any two sets of images: ``python -m metrics fid A B``.

A set is a folder of images (``.png .jpg .jpeg .bmp .webp``, searched recursively, every
file used: there is no held-out split), an ``.npz`` of uint8 images (key ``images``, or
its only array; NHWC, or NHW for gray; pickles refused), or the statistics of a set saved
earlier with ``--save-stats`` (or a reference statistics file of the cache): mean,
covariance, the kept features and the network that computed them.

Everything is checked before anything is scored: each file is decoded once up front
(unreadable ones are named), channel counts must be 1 (gray) or 3 (RGB), and statistics
must come from the network that scores the other set. The sets then go through the same
pipeline as a run's samples (:func:`metrics.features.collect` and
:func:`metrics.metrics_from_stats`): A in the role of the generated images (its first
``MAX_KEPT_FEATURES`` features kept for KID and precision/recall), B in that of the
reference images (a uniform random subset, seed 0, as the reference statistics of a run):
``fid samples.npz train.npz`` gives the numbers ``metrics score`` gives the run.

This module imports TensorFlow only once the inputs have been checked.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import os
import sys
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import MetricsError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: Recorded in the ``meta`` of statistics written by ``--save-stats``.
SET_STATS_KIND = "image-set statistics"
#: Decoded folders up to this size stay in memory; larger ones are decoded again when fed.
KEEP_DECODED_BYTES = 2 << 30
BATCH = 250  # images per batch fed to the network (as metrics.features.uint8_batches)
_STATS_KEYS = ("mu", "sigma", "features", "n_samples", "meta")


def _min_images() -> int:
    from . import PR_K

    return PR_K + 1  # precision/recall look at each image's PR_K-th nearest neighbour


# --------------------------------------------------------------------------------------
# Reading a set (numpy and PIL only)
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class ImageSet:
    """One side of a comparison, read and checked."""

    name: str  # "A" or "B"
    path: Path
    kind: str  # "folder" | "npz" | "stats"
    count: int
    shapes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    notes: list = dataclasses.field(default_factory=list)  # conversions made when reading
    images: np.ndarray | None = None  # npz: uint8 [N, H, W, C]
    files: list | None = None  # folder: the image files, in order
    decoded: list | None = None  # folder: their uint8 [H, W, C] pixels, when kept
    channels: int = 0
    stats: object | None = None  # kind "stats": a metrics.features.FeatureStats

    @property
    def where(self) -> str:
        return f"{self.name} ({self.path})"

    def describe(self) -> str:
        """``<path>: 2000 images, npz uint8 32x32x1`` (counts and what was read)."""
        if self.kind == "stats":
            meta = self.stats.meta
            return (f"{self.path}: statistics of {self.count} images "
                    f"({meta.get('source') or meta.get('dataset') or 'saved earlier'})")
        shapes = ", ".join(f"{_shape(s)} x{n}" if len(self.shapes) > 1 else _shape(s)
                           for s, n in self.shapes.most_common(3))
        more = f" and {len(self.shapes) - 3} other sizes" if len(self.shapes) > 3 else ""
        what = "folder of images" if self.kind == "folder" else "npz uint8"
        notes = f"; read: {'; '.join(self.notes)}" if self.notes else ""
        return f"{self.path}: {self.count} images, {what} {shapes}{more}{notes}"

    def image(self, index: int) -> np.ndarray:
        """uint8 [H, W, C] pixels of image ``index`` of a folder or an npz."""
        if self.images is not None:
            return self.images[index]
        if self.decoded is not None:
            return self.decoded[index]
        return _decode(self.files[index], self.channels, self.where)

    def batches(self):
        """float32 batches in [-1, 1], each of one image shape, in the set's order."""
        if self.images is not None:
            from .features import uint8_batches

            yield from uint8_batches(self.images, BATCH)
            return
        run: list = []
        for index in range(self.count):
            image = self.image(index)
            if run and (image.shape != run[0].shape or len(run) == BATCH):
                yield np.stack(run).astype(np.float32) / 127.5 - 1.0
                run = []
            run.append(image)
        if run:
            yield np.stack(run).astype(np.float32) / 127.5 - 1.0


def _shape(shape) -> str:
    return "x".join(str(int(d)) for d in shape)


def open_set(path, name: str) -> ImageSet:
    """Read and check one set: a folder of images, an .npz of images or saved statistics.
    Any problem is a MetricsError of one line naming the file and what to do."""
    path = Path(os.fspath(path)).expanduser()
    where = f"{name} ({path})"
    if path.is_dir():
        image_set = _open_folder(path, name)
    elif not path.exists():
        raise MetricsError(f"{where} does not exist: pass a folder of images, an .npz of "
                           f"uint8 images or a statistics .npz written by --save-stats")
    elif path.suffix.lower() in (".npz", ".npy"):
        image_set = _open_npz(path, name)
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        raise MetricsError(f"{where} is one image: a set is a folder of images, an .npz of "
                           f"uint8 images or saved statistics; pass the folder it is in")
    else:
        raise MetricsError(f"{where} is neither a folder nor an .npz: pass a folder of images "
                           f"({' '.join(IMAGE_EXTENSIONS)}), an .npz of uint8 images or a "
                           f"statistics .npz written by --save-stats")
    if image_set.count < _min_images():
        raise MetricsError(f"{where} holds {image_set.count} images; the metrics need at least "
                           f"{_min_images()} per set (precision/recall use each image's "
                           f"{_min_images() - 1}rd nearest neighbour): add images")
    return image_set


# ---- folders --------------------------------------------------------------------------
def _scan(root: Path) -> tuple[list, int]:
    """(sorted image files under ``root``, number of other files)."""
    found, others = [], 0
    for directory, _subdirs, files in os.walk(root):
        for file_name in files:
            if Path(file_name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(directory) / file_name)
            else:
                others += 1
    return sorted(found, key=lambda p: p.relative_to(root).as_posix()), others


_GRAY_MODES = ("1", "L", "LA", "I", "F", "La")


def _header(path: Path):
    """(width, height, mode) of an image file, its pixel data checked where the format
    allows it without decoding (PNG chunk CRCs)."""
    from PIL import Image

    with Image.open(path) as image:
        size, mode = image.size, image.mode
        image.verify()
    return size, mode


def _decode(path: Path, channels: int, where: str) -> np.ndarray:
    """One file -> uint8 [H, W, channels] (channels 1: gray, 3: RGB), no resizing."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode.startswith("I;16") or image.mode == "I":  # 16 bits: scaled, not clipped
                values = np.asarray(image).astype(np.int64)
                if values.size and (values.min() < 0 or values.max() > 65535):
                    raise ValueError(f"integer pixels span {values.min()}..{values.max()}")
                image = Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8)
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise MetricsError(f"{where}: {path} cannot be read as an image ({type(err).__name__}: "
                           f"{err}); remove or replace the file") from None
    return pixels[..., None] if channels == 1 else pixels


def _open_folder(root: Path, name: str) -> ImageSet:
    where = f"{name} ({root})"
    files, others = _scan(root)
    if not files:
        extra = f" (it holds {others} other files)" if others else ""
        raise MetricsError(f"{where} holds no images{extra}: put .png or .jpg files in it "
                           f"(subfolders are searched too), or pass an .npz of uint8 images")
    workers = min(8, os.cpu_count() or 1)

    def header(path):
        try:
            return _header(path), None
        except Exception as err:  # noqa: BLE001 - any failure is "cannot be read"
            return None, f"{path} ({type(err).__name__}: {err})"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        headers = list(pool.map(header, files))
    bad = [problem for _, problem in headers if problem]
    if bad:
        raise MetricsError(f"{where}: {len(bad)} of {len(files)} image files cannot be read, "
                           f"e.g. {bad[0]}; remove or replace them")
    modes = collections.Counter(mode for (_, mode), _ in headers)
    channels = 1 if all(mode in _GRAY_MODES or mode.startswith("I;16") for mode in modes) else 3
    notes = []
    alpha = sum(n for mode, n in modes.items() if mode in ("RGBA", "LA", "La", "PA", "RGBa"))
    if alpha:
        notes.append(f"alpha channel dropped in {alpha}")
    if modes.get("P"):
        notes.append(f"{modes['P']} palette images converted to RGB")
    sixteen = sum(n for mode, n in modes.items() if mode.startswith("I;16") or mode == "I")
    if sixteen:
        notes.append(f"{sixteen} 16-bit images scaled to 8 bits")
    gray = sum(n for mode, n in modes.items() if mode in _GRAY_MODES or mode.startswith("I;16"))
    if channels == 3 and gray:
        notes.append(f"{gray} gray images repeated to RGB (the folder mixes gray and colour)")
    estimate = sum(w * h * channels for (size, _), _ in headers for w, h in [size])
    keep = estimate <= KEEP_DECODED_BYTES
    # Every file decoded now, so that none fails once scoring has begun; the pixels are
    # kept unless the folder is too large (then decoded again when fed).
    def decode(path):
        image = _decode(path, channels, where)
        return image if keep else image.shape

    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(decode, files))
    shapes = collections.Counter(image.shape if keep else image for image in decoded)
    if others:
        notes.append(f"{others} files of other types ignored")
    return ImageSet(name=name, path=root, kind="folder", count=len(files), shapes=shapes,
                    notes=notes, files=files, decoded=decoded if keep else None,
                    channels=channels)


# ---- npz ------------------------------------------------------------------------------
_NPZ_ERRORS = (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def _open_npz(path: Path, name: str) -> ImageSet:
    where = f"{name} ({path})"
    try:
        loaded = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as err:
        raise MetricsError(f"{where} is not a readable .npz ({_npz_reason(err)}); write it "
                           f"again with numpy.savez(path, images=uint8_array)") from None
    if isinstance(loaded, np.ndarray):
        array_keys, arrays = ["(the .npy array)"], {"(the .npy array)": loaded}
    else:
        with loaded:
            array_keys = list(loaded.files)
            if all(k in array_keys for k in ("mu", "sigma")):
                return _open_stats(loaded, path, name)
            key = "images" if "images" in array_keys else (array_keys[0] if len(array_keys) == 1
                                                             else None)
            if key is None:
                raise MetricsError(f"{where} holds arrays {array_keys} and none named 'images': "
                                   f"save the images under the key 'images'")
            try:
                arrays = {key: loaded[key]}
            except _NPZ_ERRORS as err:
                raise MetricsError(f"{where}: the array {key!r} cannot be read "
                                   f"({_npz_reason(err)}); write it again as plain uint8 "
                                   f"pixels: numpy.savez(path, images=uint8_array)") from None
    (key, images), = arrays.items()
    if images.dtype != np.uint8:
        raise MetricsError(f"{where}: {key} is {images.dtype} {list(images.shape)}; save uint8 "
                           f"pixels 0..255 (e.g. np.clip((x + 1) * 127.5 + 0.5, 0, 255)"
                           f".astype(np.uint8) for images in [-1, 1])")
    notes = []
    if images.ndim == 3:
        images = images[..., None]
        notes.append("[N, H, W] read as gray")
    if images.ndim != 4:
        raise MetricsError(f"{where}: {key} has shape {list(images.shape)}; save images as "
                           f"[N, H, W, C] (or [N, H, W] for gray)")
    if images.shape[-1] not in (1, 3):
        fix = ("drop the alpha channel (images[..., :3])" if images.shape[-1] == 4 else
               "save gray [N, H, W, 1] or RGB [N, H, W, 3] images (NHWC, channels last)")
        raise MetricsError(f"{where}: images have {images.shape[-1]} channels "
                           f"{list(images.shape)}; the networks convert only gray (1) and RGB "
                           f"(3): {fix}")
    if min(images.shape[1:3]) < 2:
        raise MetricsError(f"{where}: images of {images.shape[1]}x{images.shape[2]} pixels "
                           f"{list(images.shape)}: save NHWC images (channels last)")
    return ImageSet(name=name, path=path, kind="npz", count=int(len(images)),
                    shapes=collections.Counter({tuple(images.shape[1:]): len(images)}),
                    notes=notes, images=images, channels=int(images.shape[-1]))


def _npz_reason(err: Exception) -> str:
    text = str(err)
    if "allow_pickle" in text:
        return "it holds pickled objects, which are refused"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _open_stats(loaded, path: Path, name: str) -> ImageSet:
    """Statistics written by --save-stats (or a reference statistics file of the cache)."""
    where = f"{name} ({path})"
    missing = [k for k in _STATS_KEYS if k not in loaded.files]
    if missing:
        raise MetricsError(f"{where} looks like statistics but lacks {missing}: write it again "
                           f"with python -m metrics fid SET --save-stats {path.name}")
    try:
        mu = np.asarray(loaded["mu"], np.float64)
        sigma = np.asarray(loaded["sigma"], np.float64)
        features = np.asarray(loaded["features"], np.float32)
        n_samples = int(loaded["n_samples"])
        meta = json.loads(str(loaded["meta"]))
    except (*_NPZ_ERRORS, TypeError) as err:
        raise MetricsError(f"{where}: damaged statistics ({_npz_reason(err)}); write them again "
                           f"with --save-stats") from None
    dim = mu.shape[0] if mu.ndim == 1 else -1
    if (not isinstance(meta, dict) or not isinstance(meta.get("network"), str) or dim < 1
            or sigma.shape != (dim, dim) or features.ndim != 2 or features.shape[1] != dim
            or n_samples < 2 or not (np.isfinite(mu).all() and np.isfinite(sigma).all())):
        raise MetricsError(f"{where}: damaged statistics (mean {list(mu.shape)}, covariance "
                           f"{list(sigma.shape)}, features {list(features.shape)}, "
                           f"{n_samples} images, network {meta.get('network') if isinstance(meta, dict) else None!r}); "
                           f"write them again with --save-stats")
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        recorded = (sidecar.read_text().split() or [""])[0]
        if _sha256_file(path) != recorded:
            raise MetricsError(f"{where}: its SHA-256 differs from the one recorded in "
                               f"{sidecar.name}: the file changed since it was written; write "
                               f"it again with --save-stats")
    stats = _Stats(mu, sigma, features, n_samples, meta)
    return ImageSet(name=name, path=path, kind="stats", count=n_samples, stats=stats)


@dataclasses.dataclass
class _Stats:
    """What metrics_from_stats reads of a FeatureStats, without importing TensorFlow."""

    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    n_samples: int
    meta: dict


def _sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stats_identity(stats) -> tuple[str, str | None]:
    """(network label, weights SHA-256 or its first 12 digits, or None) of saved statistics."""
    meta = stats.meta
    label = meta["network"]
    digest = meta.get("weights_sha256")
    if not digest and label.startswith("evaluator:"):
        digest = label.rsplit(":", 1)[-1]  # the label ends with 12 digits of it
    return label, digest


def _same_digest(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return True  # not recorded: the label decides
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def check_save_path(path, sets) -> Path:
    """``--save-stats OUT.npz``: a writable place that holds no other kind of file."""
    from common.files import writable_dir_problem

    path = Path(os.fspath(path)).expanduser()
    if path.suffix.lower() != ".npz":
        raise MetricsError(f"--save-stats {path}: name the file with .npz (e.g. {path.stem}.npz)")
    if path.is_dir():
        raise MetricsError(f"--save-stats {path} is a folder: give a file name ending in .npz")
    if any(s.path.resolve() == path.resolve() for s in sets):
        raise MetricsError(f"--save-stats {path} is the set being read: choose another file")
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as existing:
                ours = "mu" in existing.files and "sigma" in existing.files
        except (*_NPZ_ERRORS, AttributeError):
            ours = False
        if not ours:
            raise MetricsError(f"--save-stats {path} exists and holds no statistics (images?): "
                               f"it is not overwritten; choose another file")
    problem = writable_dir_problem(path.parent)
    if problem:
        raise MetricsError(f"--save-stats {path}: {problem}; choose a writable place")
    return path


# --------------------------------------------------------------------------------------
# The network (TensorFlow from here on)
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Network:
    kind: str  # "inception" | "evaluator"
    feature_network: object  # metrics.features.FeatureNetwork
    input_shape: tuple | None  # the evaluator's (H, W, C); None: Inception (any size)
    about: str  # one phrase on what its numbers compare with

    @property
    def label(self) -> str:
        return self.feature_network.label

    @property
    def sha256(self) -> str | None:
        return self.feature_network.weights_sha256

    def names(self) -> tuple[str, str]:
        """(the Fréchet distance's name, the Inception Score's name)."""
        return ("fid", "is") if self.kind == "inception" else ("fd_eval", "is_eval")

    def preprocessing(self, image_set: ImageSet) -> str:
        """How the network converts this set's images, said."""
        steps = []
        channels = image_set.channels
        if self.kind == "inception":
            if channels == 1:
                steps.append("gray repeated to RGB")
            steps.append(f"resized {self._sizes(image_set)} -> 299x299 (TF1 bilinear, as the "
                         f"2015 graph)")
            return ", ".join(steps)
        height, width, want = self.input_shape
        if channels != want:
            steps.append("RGB averaged to gray" if want == 1 else "gray repeated to RGB")
        if any(s[:2] != (height, width) for s in image_set.shapes):
            steps.append(f"resized {self._sizes(image_set)} -> {height}x{width} (bilinear, "
                         f"antialiased)")
        return ", ".join(steps) or f"fed as they are ({height}x{width}x{want})"

    @staticmethod
    def _sizes(image_set: ImageSet) -> str:
        sizes = sorted({f"{s[0]}x{s[1]}" for s in image_set.shapes})
        return sizes[0] if len(sizes) == 1 else f"{{{', '.join(sizes[:3])}{', ...' if len(sizes) > 3 else ''}}}"


def _evaluator_folders(cache_dir) -> list[Path]:
    """Folders that may hold an evaluator: the repository's, then this machine's cache."""
    from .evaluator import SHIPPED_DIR

    found = sorted(p for p in SHIPPED_DIR.glob("*") if (p / "info.json").is_file())
    if cache_dir is not None:
        found += sorted(p for p in (Path(cache_dir) / "evaluator").glob("*")
                        if (p / "info.json").is_file())
    return found


def _evaluator_info(folder: Path) -> dict | None:
    try:
        info = json.loads((folder / "info.json").read_text())
        return info if isinstance(info, dict) and "image_shape" in info else None
    except (OSError, ValueError):
        return None


def _find_evaluator(spec: str | None, sets, cache_dir, stats_label: str | None) -> Path:
    """The evaluator folder: ``--evaluator KEY|DIR``, the one named by statistics, or the
    repository's evaluator closest to set A's image shape."""
    folders = _evaluator_folders(cache_dir)
    available = ", ".join(p.name for p in folders) or "none"
    if spec:
        path = Path(spec).expanduser()
        if path.is_dir() or os.sep in spec or "/" in spec:
            return path  # load_evaluator says what is wrong with a wrong path
        for folder in folders:
            if folder.name == spec:
                return folder
        raise MetricsError(f"--evaluator {spec}: no evaluator of that name (available: "
                           f"{available}); pass one of those or an evaluator's folder")
    if stats_label:
        key = stats_label.split(":")[1] if stats_label.count(":") >= 1 else ""
        for folder in folders:
            if folder.name == key:
                return folder
        raise MetricsError(f"the statistics were computed by {stats_label}, which is not at "
                           f"hand (available: {available}): pass its folder with --evaluator DIR")
    if not folders:
        raise MetricsError("no evaluator is at hand (the repository's metrics/evaluators/ is "
                           "empty): pass --evaluator DIR or --inception-weights PATH")
    shape = next((s.shapes.most_common(1)[0][0] for s in sets if s.kind != "stats"), None)

    def distance(folder):
        info = _evaluator_info(folder) or {}
        have = tuple(int(d) for d in info.get("image_shape", (0, 0, 0)))
        if shape is None:
            return (0, 0, folder.name)
        return (have != tuple(shape), have[2] != shape[2], abs(have[0] - shape[0]), folder.name)

    return min(folders, key=distance)


def resolve_network(choice: str, sets, *, evaluator=None, inception_weights=None,
                    cache_dir=None) -> Network | None:
    """The network that scores the image sets (None when both are statistics), refusing
    statistics of another network; built and loaded here (TensorFlow is imported)."""
    from . import NETWORK_CHOICES, inception_feature_network
    from .inception import NETWORK_NAME
    from .weights import (WEIGHTS_FLAG, cached_weights, default_cache_dir, resolve_weights_file,
                          sha256_of, weights_dir)

    if choice not in NETWORK_CHOICES or choice == "none":
        raise MetricsError(f"--network {choice}: choose auto, inception or evaluator")
    cache_dir = Path(cache_dir or default_cache_dir())
    stats = [s for s in sets if s.kind == "stats"]
    identities = [stats_identity(s.stats) for s in stats]
    if len(identities) == 2:
        (la, da), (lb, db) = identities
        if la != lb or not _same_digest(da, db):
            raise MetricsError(f"A and B hold statistics of different networks ({la} vs {lb}): "
                               f"compute both with one network")
    wanted = identities[0] if identities else None
    if wanted:
        kind = "inception" if wanted[0] == NETWORK_NAME else "evaluator"
        if choice not in ("auto", kind) or (evaluator and kind == "inception"):
            raise MetricsError(f"{stats[0].where} holds statistics of {wanted[0]}, not of the "
                               f"network asked for: compute them again with that network, or "
                               f"leave --network (and --evaluator) out")
        if len(stats) == len(sets):
            return None
        choice = kind
    if choice == "auto":
        at_hand = bool(inception_weights) or cached_weights(cache_dir) is not None
        choice = "evaluator" if evaluator or not at_hand else "inception"
    if choice == "inception":
        if evaluator:
            raise MetricsError("--evaluator goes with --network evaluator (or auto), not "
                               "inception: leave one out")
        copy = "a copy of pt_inception-2015-12-05-6726825d.pth or inception-2015-12-05.tgz"
        if inception_weights:
            path = Path(inception_weights).expanduser()
            if not path.is_file():
                raise MetricsError(f"{WEIGHTS_FLAG} {inception_weights}: no such file; pass the "
                                   f"path of {copy}")
        else:
            try:
                path = resolve_weights_file(None, cache_dir, download=False)
            except MetricsError:
                raise MetricsError(f"the Inception weights are not in {weights_dir(cache_dir)}: "
                                   f"download them with python -m metrics fetch, or pass "
                                   f"{WEIGHTS_FLAG} PATH ({copy}), or use --network "
                                   f"evaluator") from None
        if wanted and not _same_digest(wanted[1], sha256_of(path)):
            raise MetricsError(f"{stats[0].where} was computed with other Inception weights "
                               f"(sha256 {wanted[1]}) than {path} ({sha256_of(path)}): pass "
                               f"those weights with {WEIGHTS_FLAG}, or compute the statistics "
                               f"again")
        network = inception_feature_network(str(path), cache_dir)
        return Network("inception", network, None,
                       "FID/IS of the 2015 Inception graph, comparable with the literature")
    folder = _find_evaluator(evaluator, sets, cache_dir, wanted[0] if wanted else None)
    from .evaluator import evaluator_network, load_evaluator

    model, info = load_evaluator(folder)
    network = evaluator_network(model, info)
    if wanted and (wanted[0] != network.label or not _same_digest(wanted[1], network.weights_sha256)):
        raise MetricsError(f"{stats[0].where} holds statistics of {wanted[0]}, not of "
                           f"{network.label} ({folder}): pass the evaluator they were computed "
                           f"with (--evaluator), or compute them again with this one")
    about = (f"the suite's {info['dataset']} evaluator: fd_eval/is_eval compare only with "
             f"numbers of this evaluator")
    return Network("evaluator", network, tuple(int(d) for d in info["image_shape"]), about)


# --------------------------------------------------------------------------------------
# Statistics and the comparison
# --------------------------------------------------------------------------------------
def set_statistics(image_set: ImageSet, network: Network, *, role: str, progress: bool = True):
    """(FeatureStats, (IS, split std) or None) of an image set. ``role`` 'generated': the
    first features are kept (as a run's samples); 'reference': a uniform random subset
    (seed 0), as a run's reference statistics."""
    from . import IS_SPLITS
    from .features import FeatureRunner, collect
    from .stats import InceptionScoreAccumulator

    net = network.feature_network
    with_is = net.logits_are_meaningful and image_set.count >= IS_SPLITS
    acc = InceptionScoreAccumulator(image_set.count, net.num_classes, IS_SPLITS) if with_is else None
    stats = collect(FeatureRunner(net), image_set.batches(), limit=image_set.count,
                    keep="first" if role == "generated" else "random", seed=0,
                    inception_score=acc, label=f"{image_set.name} {image_set.path.name}",
                    progress=progress)
    if stats.n_samples != image_set.count:
        raise MetricsError(f"{image_set.where}: {stats.n_samples} of {image_set.count} images "
                           f"arrived")
    is_result = acc.result() if acc is not None else None
    stats.meta.update({"kind": SET_STATS_KIND, "weights_sha256": net.weights_sha256,
                       "n_samples": stats.n_samples, "source": str(image_set.path),
                       "kept_features": int(len(stats.features)),
                       "preprocessing": network.preprocessing(image_set),
                       "is": None if is_result is None else is_result[0],
                       "is_split_std": None if is_result is None else is_result[1]})
    return stats, is_result


def _saved_preprocessing(image_set: ImageSet) -> str:
    said = image_set.stats.meta.get("preprocessing")
    return f"none now (saved statistics; when computed: {said})" if said else \
        "none now (saved statistics)"


def _stored_is(stats):
    value, spread = stats.meta.get("is"), stats.meta.get("is_split_std")
    return None if value is None else (float(value), float(spread or 0.0))


def compare_sets(a, b=None, *, network: str = "auto", evaluator=None, inception_weights=None,
                 cache_dir=None, seed: int = 0, save_stats=None, progress: bool = True) -> dict:
    """The metrics between sets ``a`` and ``b`` (paths), or with ``b`` None the statistics
    of ``a`` written to ``save_stats``. Every input is checked before anything is scored.

    Returns {'network', 'network_sha256', 'about', 'fid_name', 'is_name', 'sets': [per set:
    path, kind, n_images, read, preprocessing, is, is_split_std], and, given b, the
    metrics_from_stats keys 'fid', 'kid', 'kid_subset_std', 'precision', 'recall'}.
    """
    if b is None and save_stats is None:
        raise MetricsError("fid needs two sets (A B), or one with --save-stats OUT.npz")
    if b is not None and save_stats is not None:
        raise MetricsError("--save-stats writes the statistics of one set: give only A")
    sets = [open_set(a, "A")] + ([open_set(b, "B")] if b is not None else [])
    if save_stats is not None:
        if sets[0].kind == "stats":
            raise MetricsError(f"{sets[0].where} already holds statistics: --save-stats reads a "
                               f"folder or an .npz of images")
        save_stats = check_save_path(save_stats, sets)
    # ---- everything checked that can be without the network: load it
    net = resolve_network(network, sets, evaluator=evaluator,
                          inception_weights=inception_weights, cache_dir=cache_dir)
    from . import metrics_from_stats

    if net is None:  # two statistics files
        label, digest = stats_identity(sets[0].stats)
        kind = "inception" if not label.startswith("evaluator:") else "evaluator"
        names = ("fid", "is") if kind == "inception" else ("fd_eval", "is_eval")
        about = "" if kind == "inception" else "fd_eval/is_eval compare only with numbers of this evaluator"
        full = sets[0].stats.meta.get("weights_sha256") or sets[1].stats.meta.get("weights_sha256")
        result = {"network": label, "network_sha256": full or digest, "about": about}
    else:
        names = net.names()
        result = {"network": net.label, "network_sha256": net.sha256, "about": net.about}
    result.update({"fid_name": names[0], "is_name": names[1], "sets": []})
    computed = []
    for image_set, role in zip(sets, ("generated", "reference")):
        if save_stats is not None:
            role = "reference"  # saved statistics serve as a reference: a random subset kept
        if image_set.kind == "stats":
            stats, is_result = image_set.stats, _stored_is(image_set.stats)
        else:
            stats, is_result = set_statistics(image_set, net, role=role, progress=progress)
        computed.append((stats, is_result))
        result["sets"].append({
            "name": image_set.name, "path": str(image_set.path), "kind": image_set.kind,
            "n_images": image_set.count, "read": image_set.describe(),
            "preprocessing": (_saved_preprocessing(image_set) if image_set.kind == "stats"
                              else net.preprocessing(image_set)),
            "is": None if is_result is None else is_result[0],
            "is_split_std": None if is_result is None else is_result[1]})
    if save_stats is not None:
        computed[0][0].save(save_stats)
        result["saved"] = str(save_stats)
        return result
    from . import KID_SUBSET_SIZE

    (fake, fake_is), (ref, _) = computed
    scores = metrics_from_stats(fake, ref, fake_is, label=result["network"], seed=seed,
                                weights_sha256=result["network_sha256"])
    result.update({k: scores[k] for k in ("fid", "kid", "kid_subset_std", "precision", "recall")})
    kept = min(len(fake.features), len(ref.features))
    result.update({"kid_subset_size": min(KID_SUBSET_SIZE, kept), "pr_images": kept,
                   "kid_seed": int(seed)})
    return result


def format_result(result: dict) -> str:
    """The lines ``python -m metrics fid`` prints."""
    from . import IS_SPLITS, KID_SUBSETS, PR_K

    lines = [f"network    {result['network']}  sha256 {result['network_sha256']}"]
    if result.get("about"):
        lines.append(f"           ({result['about']})")
    for s in result["sets"]:
        lines.append(f"{s['name']:<11}{s['read']}")
        lines.append(f"{'':<11}preprocessing: {s['preprocessing']}")
    if "saved" in result:
        lines.append(f"saved      statistics of A in {result['saved']}")
    if "fid" in result:
        lines += [
            f"{result['fid_name']:<11}{result['fid']:.6g}",
            f"{'kid':<11}{result['kid']:.6g} (std {result['kid_subset_std']:.3g} over "
            f"{KID_SUBSETS} subsets of {result['kid_subset_size']}, seed {result['kid_seed']})",
            f"{'precision':<11}{result['precision']:.6g} (share of A inside B's manifold, "
            f"k={PR_K}, {result['pr_images']} images a side)",
            f"{'recall':<11}{result['recall']:.6g} (share of B inside A's manifold)"]
    for s in result["sets"]:
        if s["is"] is not None:
            lines.append(f"{result['is_name'] + ' ' + s['name']:<11}{s['is']:.6g} "
                         f"(std {s['is_split_std']:.3g} over {IS_SPLITS} splits)")
    if not any(s["is"] is not None for s in result["sets"]):
        lines.append(f"{result['is_name']:<11}not computed (the network has no class logits, "
                     f"or the sets have fewer than {IS_SPLITS} images)")
    return "\n".join(lines)


def _finite(value):
    """NaN and Inf as null: the output stays valid JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_finite(result), indent=2))
    else:
        print(format_result(result))
    sys.stdout.flush()
