"""Tests of the data package: offline, small, fast.

Covers the tfds pipelines (under tfds.testing.mock_data), the idx, CIFAR,
folder and synthetic readers, the restricted unpickler, the batch order
contract of ImageSource.batches() and the error messages.
"""

import gzip
import io
import logging
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

import tensorflow as tf
import tensorflow_datasets as tfds

from data import DatasetError, ImageSource, known_datasets, load_dataset, open_dataset
from data import catalog, folder, tfds_source
from data.safe_pickle import safe_load
from data.transform import standardize_array

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _collect(ds):
    """All (images, labels) of a batched dataset as two lists of numpy arrays."""
    images, labels = [], []
    for x, y in ds.as_numpy_iterator():
        images.append(x)
        labels.append(y)
    return images, labels


def _assert_model_ready(x, size=32, channels=3):
    assert x.dtype == np.float32
    assert x.shape[1:] == (size, size, channels)
    assert x.min() >= -1.0 and x.max() <= 1.0


# --------------------------------------------------------------------------- tfds (mocked)

@pytest.fixture(autouse=True)
def download_host_answers(monkeypatch):
    """These tests mock tfds' download itself; the probe of the download host that
    precedes it (so that offline fails in seconds) must not depend on this machine's
    network. tests/test_bad_inputs.py covers the offline probe."""
    monkeypatch.setattr(tfds_source, "reachable", lambda *args, **kwargs: True)


@pytest.mark.parametrize("name, num_classes", [
    ("cifar100", 100), ("fashion_mnist", 10), ("celeb_a", 1), ("mnist", 10), ("cifar10", 10),
])
def test_tfds_pipeline_under_mock_data(name, num_classes, tmp_path):
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        source = open_dataset(name, "train", data_dir=str(tmp_path))
    x, y = next(source.batches(6).as_numpy_iterator())  # decoded in memory: no mock needed
    assert source.provenance.startswith(f"tfds {name}:")
    assert source.num_examples == 6 and source.image_shape == (32, 32, 3)
    assert len(source.class_names) == num_classes
    _assert_model_ready(x)
    assert y.dtype == np.int32 and y.shape == (6,)
    assert ((y >= 0) & (y < num_classes)).all()
    if name == "celeb_a":
        assert source.class_names == ["face"] and (y == 0).all()


def test_tfds_celeb_a_validation_split_and_gray(tmp_path):
    with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
        source = open_dataset("celeb_a", "validation", image_size=16, channels=1,
                              data_dir=str(tmp_path))
    assert source.image_shape == (16, 16, 1) and source.num_examples == 3


def test_tfds_download_failure_explains_what_to_download(tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(DatasetError) as error:
        open_dataset("cifar100", data_dir=str(tmp_path))
    message = str(error.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    assert "DATA_DIR" in message and "no network" in message
    assert isinstance(error.value.__cause__, DatasetError)


def test_tfds_download_false_never_downloads(tmp_path, monkeypatch):
    def forbidden(self, *args, **kwargs):
        raise AssertionError("download_and_prepare must not run with download=False")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", forbidden)
    with pytest.raises(DatasetError, match="download=False") as error:
        open_dataset("celeb_a", data_dir=str(tmp_path), download=False)
    assert "tfds build celeb_a" in str(error.value)


def test_system_copy_is_used_when_tfds_cannot_download(tmp_path, monkeypatch):
    system = tmp_path / "system"
    system.mkdir()
    _write_idx_pair(system, "train", np.zeros((3, 28, 28), np.uint8), [1, 2, 3])
    monkeypatch.setitem(catalog.SYSTEM_DIRS, "fashion_mnist", [str(system)])
    monkeypatch.setattr(tfds_source, "prepare", _raise_unavailable)
    source = open_dataset("fashion_mnist", data_dir=str(tmp_path))
    assert source.num_examples == 3 and "system" in source.provenance


def _raise_unavailable(*args, **kwargs):
    raise tfds_source.TfdsUnavailable("offline")


# --------------------------------------------------------------------------- idx files

def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def _write(path: Path, payload: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def _write_idx_pair(directory: Path, split: str, images, labels, gz=True):
    prefix = "train" if split == "train" else "t10k"
    image_file = _write(directory / f"{prefix}-images-idx3-ubyte", _idx_bytes(images), gz)
    label_file = _write(directory / f"{prefix}-labels-idx1-ubyte",
                        _idx_bytes(np.asarray(labels, np.uint8)), gz)
    return image_file, label_file


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_gz_and_raw(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = [0, 1, 2, 3, 4, 5, 9]
    _write_idx_pair(tmp_path, "test", images, labels, gz=gz)
    exact = open_dataset("mnist", "test", image_size=28, channels=1, data_dir=str(tmp_path))
    assert exact.provenance == f"idx files in {tmp_path}"
    assert exact.class_names == [str(d) for d in range(10)]
    got_images, got_labels = exact.arrays()
    np.testing.assert_array_equal(got_images[..., 0], images)
    np.testing.assert_array_equal(got_labels, labels)
    resized = open_dataset("mnist", "test", data_dir=str(tmp_path), limit=4)
    assert resized.image_shape == (32, 32, 3) and resized.num_examples == 4
    x, _ = next(resized.batches(4).as_numpy_iterator())
    _assert_model_ready(x)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])  # gray repeated into RGB


def test_idx_in_dataset_subfolder(tmp_path):
    sub = tmp_path / "fashion_mnist"
    sub.mkdir()
    _write_idx_pair(sub, "train", np.zeros((2, 28, 28), np.uint8), [3, 4])
    source = open_dataset("fashion_mnist", data_dir=str(tmp_path))
    assert source.class_names[3] == "Dress" and source.num_examples == 2


@pytest.mark.parametrize("damage", ["truncated", "trailing", "magic", "count", "gzip", "rank"])
def test_bad_idx_files_raise(tmp_path, damage):
    images = np.zeros((4, 28, 28), np.uint8)
    image_file, label_file = _write_idx_pair(tmp_path, "train", images, [0, 1, 2, 3], gz=False)
    bad = image_file
    if damage == "truncated":
        image_file.write_bytes(image_file.read_bytes()[:-10])
    elif damage == "trailing":
        image_file.write_bytes(image_file.read_bytes() + b"\0")
    elif damage == "magic":
        raw = bytearray(image_file.read_bytes())
        raw[3] = 0x02
        image_file.write_bytes(bytes(raw))
    elif damage == "count":
        label_file.write_bytes(_idx_bytes(np.zeros(3, np.uint8)))
    elif damage == "gzip":
        image_file.unlink()
        bad = tmp_path / "train-images-idx3-ubyte.gz"
        bad.write_bytes(gzip.compress(_idx_bytes(images))[:40])
    elif damage == "rank":
        image_file.write_bytes(_idx_bytes(np.zeros((4, 28, 28, 1), np.uint8)))
    with pytest.raises(DatasetError) as error:
        open_dataset("mnist", data_dir=str(tmp_path))
    assert bad.name in str(error.value)


def test_real_fashion_mnist_files():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({FASHION_DIR} missing)")
    train = open_dataset("fashion_mnist", "train", image_size=28, channels=1,
                         data_dir=str(FASHION_DIR))
    test = open_dataset("fashion_mnist", "test", data_dir=str(FASHION_DIR))
    assert (train.num_examples, test.num_examples) == (60000, 10000)
    assert train.image_shape == (28, 28, 1) and test.image_shape == (32, 32, 3)
    assert test.class_names == catalog.FASHION_MNIST_CLASS_NAMES
    assert test.class_names[0] == "T-shirt/top" and test.class_names[9] == "Ankle boot"
    labels = test.arrays()[1]
    assert np.bincount(labels).tolist() == [1000] * 10
    x, y = next(test.batches(64, shuffle_seed=0).as_numpy_iterator())
    _assert_model_ready(x)
    assert x.std() > 0.1  # real clothes, not a blank image


# --------------------------------------------------------------------------- CIFAR files

class _Evil:
    """A pickle payload that would run a shell command when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


def _cifar_batch(n, label_key, rng, num_classes, str_keys=True):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {"data": data, label_key: [int(v) for v in rng.integers(0, num_classes, n)],
             "filenames": [f"img_{i}.png" for i in range(n)], "batch_label": "test batch"}
    if not str_keys:
        batch = {k.encode(): v for k, v in batch.items()}
    return batch


def _add_member(tar: tarfile.TarFile, name: str, payload: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _write_cifar100(path: Path, train_payload=None, n_train=12, n_test=5, extra=()):
    """A CIFAR-100-layout tarball; returns the train/test batches written."""
    rng = np.random.default_rng(1)
    train = _cifar_batch(n_train, "fine_labels", rng, 100)
    test = _cifar_batch(n_test, "fine_labels", rng, 100)
    meta = {"fine_label_names": [f"class_{i:02d}" for i in range(100)],
            "coarse_label_names": [f"super_{i}" for i in range(20)]}
    with tarfile.open(path, "w:gz") as tar:
        _add_member(tar, "cifar-100-python/meta", pickle.dumps(meta, protocol=4))
        _add_member(tar, "cifar-100-python/train",
                    train_payload if train_payload is not None else pickle.dumps(train, 4))
        _add_member(tar, "cifar-100-python/test", pickle.dumps(test, protocol=3))
        for name, payload in extra:
            _add_member(tar, name, payload)
    return train, test


def _chw_to_hwc(data):
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def test_cifar100_tarball(tmp_path, caplog):
    train, test = _write_cifar100(tmp_path / "cifar-100-python.tar.gz")
    with caplog.at_level(logging.WARNING, logger="data.cifar"):
        source = open_dataset("cifar100", "train", data_dir=str(tmp_path))
    assert "differs from the official" in caplog.text  # md5 warning, not an error
    assert source.provenance.startswith("CIFAR python files in")
    assert source.num_examples == 12 and source.image_shape == (32, 32, 3)
    assert len(source.class_names) == 100 and source.class_names[7] == "class_07"
    images, labels = source.arrays()
    np.testing.assert_array_equal(images, _chw_to_hwc(train["data"]))
    np.testing.assert_array_equal(labels, train["fine_labels"])
    test_source = open_dataset("cifar100", "test", data_dir=str(tmp_path), image_size=16,
                               channels=1)
    assert test_source.num_examples == 5 and test_source.image_shape == (16, 16, 1)
    x, y = next(load_dataset("cifar100", "test", batch_size=5, data_dir=str(tmp_path))[0]
                .as_numpy_iterator())
    _assert_model_ready(x)
    np.testing.assert_allclose(x, _chw_to_hwc(test["data"]) / 127.5 - 1.0, atol=1e-6)


def test_cifar10_extracted_folder_with_bytes_keys(tmp_path):
    folder_path = tmp_path / "cifar-10-batches-py"
    folder_path.mkdir()
    rng = np.random.default_rng(2)
    batches = [_cifar_batch(2, "labels", rng, 10, str_keys=False) for _ in range(5)]
    for i, batch in enumerate(batches, start=1):
        (folder_path / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=4))
    (folder_path / "test_batch").write_bytes(
        pickle.dumps(_cifar_batch(3, "labels", rng, 10), protocol=4))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    (folder_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, 4))
    source = open_dataset("cifar10", data_dir=str(tmp_path))
    assert source.num_examples == 10 and source.class_names[-1] == "truck"
    images, labels = source.arrays()
    np.testing.assert_array_equal(images[8:], _chw_to_hwc(batches[4][b"data"]))
    np.testing.assert_array_equal(labels[:2], batches[0][b"labels"])


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned.txt"
    _write_cifar100(tmp_path / "cifar-100-python.tar.gz",
                    train_payload=pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(DatasetError) as error:
        open_dataset("cifar100", "train", data_dir=str(tmp_path))
    assert "refused as unsafe" in str(error.value)
    assert "cifar-100-python/train" in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("os", "system"),
                                          ("numpy._core.numeric", "_frombuffer")])
def test_restricted_unpickler_refuses_other_globals(module, name):
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    with pytest.raises(DatasetError, match="refused as unsafe"):
        safe_load(io.BytesIO(payload), "evil.pkl", "Re-download it.")


def test_the_restricted_unpickler_resolves_only_its_callers_globals():
    """``common.safe_pickle``: one unpickler, parametrised by the globals a caller allows
    (CIFAR's numpy arrays here, the torch port's rebuild functions in metrics.weights)."""
    import collections

    from common.safe_pickle import RefusedGlobal, RestrictedUnpickler
    payload = pickle.dumps(collections.OrderedDict(a=1), protocol=2)
    allowed = {("collections", "OrderedDict"): collections.OrderedDict}
    assert RestrictedUnpickler(io.BytesIO(payload), allowed).load() == {"a": 1}
    with pytest.raises(RefusedGlobal, match="collections.OrderedDict"):
        RestrictedUnpickler(io.BytesIO(payload), {}).load()
    with pytest.raises(LookupError, match="refused: collections.OrderedDict"):
        RestrictedUnpickler(io.BytesIO(payload), {},
                            refuse=lambda what: LookupError(f"refused: {what}")).load()


def test_cifar_truncated_tarball(tmp_path):
    archive = tmp_path / "cifar-100-python.tar.gz"
    _write_cifar100(archive, n_train=200)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match="corrupt") as error:
        open_dataset("cifar100", "train", data_dir=str(tmp_path))
    assert "cifar-100-python.tar.gz" in str(error.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in str(error.value)


def test_cifar_archive_with_dotdot_member_is_refused(tmp_path):
    _write_cifar100(tmp_path / "cifar-100-python.tar.gz", extra=[("../escape", b"x")])
    with pytest.raises(DatasetError, match="'..'"):
        open_dataset("cifar100", "test", data_dir=str(tmp_path))


def test_cifar_wrong_row_length(tmp_path):
    bad = {"data": np.zeros((2, 3000), np.uint8), "fine_labels": [0, 1]}
    _write_cifar100(tmp_path / "cifar-100-python.tar.gz", train_payload=pickle.dumps(bad, 4))
    with pytest.raises(DatasetError, match="3072"):
        open_dataset("cifar100", "train", data_dir=str(tmp_path))


# --------------------------------------------------------------------------- folders

def _save_image(path: Path, size, mode, value):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def _make_class_folder(root: Path, per_class=12):
    for i in range(per_class):
        _save_image(root / "cats" / f"c{i:02d}.png", (40, 30), "RGB", (200, 10, 10))
        _save_image(root / "dogs" / "deep" / f"d{i:02d}.jpg", (24, 24), "L", 60)
    return per_class * 2


def test_folder_with_class_subfolders(tmp_path):
    total = _make_class_folder(tmp_path / "pets")
    train = open_dataset(f"folder:{tmp_path / 'pets'}", "train")
    test = open_dataset("folder:pets", "test", data_dir=str(tmp_path), image_size=8)
    assert train.class_names == test.class_names == ["cats", "dogs"]
    assert train.num_examples + test.num_examples == total and test.num_examples > 0
    assert train.image_shape == (32, 32, 3) and test.image_shape == (8, 8, 3)
    images, labels = train.arrays()
    assert set(labels.tolist()) == {0, 1}
    cat = images[labels == 0][0]
    assert tuple(cat[16, 16]) == (200, 10, 10)
    dog = images[labels == 1][0]
    assert abs(int(dog[4, 4, 0]) - 60) <= 2 and dog[4, 4, 0] == dog[4, 4, 2]


def test_folder_single_class_is_named_after_folder(tmp_path):
    for i in range(20):
        _save_image(tmp_path / "faces" / f"f{i}.bmp", (10, 10), "RGB", (i, i, i))
    source = open_dataset(f"folder:{tmp_path / 'faces'}", channels=1, image_size=10)
    assert source.class_names == ["faces"] and source.image_shape == (10, 10, 1)


def test_folder_unreadable_image(tmp_path):
    root = tmp_path / "pets"
    _make_class_folder(root, per_class=3)
    bad = root / "cats" / "broken.png"
    bad.write_bytes(b"this is not a png")
    split = folder.split_of("cats/broken.png")
    with pytest.raises(DatasetError) as error:
        open_dataset(f"folder:{root}", split)
    assert "broken.png" in str(error.value)


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        open_dataset(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .* images"):
        open_dataset(f"folder:{tmp_path / 'empty'}")


# --------------------------------------------------------------------------- synthetic

def test_synthetic_deterministic_and_distinct():
    a = open_dataset("synthetic", "train", seed=3, limit=40).arrays()
    b = open_dataset("synthetic", "train", seed=3, limit=40).arrays()
    c = open_dataset("synthetic", "train", seed=4, limit=40).arrays()
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert set(a[1].tolist()) == set(range(10))
    full = open_dataset("synthetic", "train", seed=3)
    test = open_dataset("synthetic", "test", seed=3, image_size=16)
    assert (full.num_examples, test.num_examples) == (512, 128)
    assert test.image_shape == (16, 16, 3) and len(full.class_names) == 10
    np.testing.assert_array_equal(full.arrays()[0][:40], a[0])  # limit keeps a prefix


def test_synthetic_classes_are_learnable():
    train_x, train_y = open_dataset("synthetic", "train").arrays()
    test_x, test_y = open_dataset("synthetic", "test").arrays()
    train_x = train_x.reshape(len(train_x), -1).astype(np.float32)
    test_x = test_x.reshape(len(test_x), -1).astype(np.float32)
    centroids = np.stack([train_x[train_y == k].mean(0) for k in range(10)])
    distances = ((test_x[:, None, :] - centroids[None]) ** 2).sum(-1)
    assert (distances.argmin(1) == test_y).mean() > 0.6  # nearest centroid; chance is 0.1


# --------------------------------------------------------------------------- batches()

@pytest.fixture(scope="module")
def small_source():
    return open_dataset("synthetic", "train", image_size=8, limit=37)


def test_batches_same_seed_and_epoch_same_order(small_source):
    ds = small_source.batches(8, shuffle_seed=5, epoch=2)
    first, second = _collect(ds), _collect(ds)
    third = _collect(small_source.batches(8, shuffle_seed=5, epoch=2))
    for other in (second, third):
        for x, y in zip(first[0], other[0]):
            np.testing.assert_array_equal(x, y)
    assert [len(y) for y in first[1]] == [8, 8, 8, 8, 5]
    assert int(ds.cardinality()) == small_source.steps_per_epoch(8) == 5
    _assert_model_ready(first[0][0], size=8)


def test_batches_epoch_is_a_permutation_and_epochs_differ(small_source):
    all_images = small_source.arrays()[0].astype(np.float32) / 127.5 - 1.0
    key = lambda images: sorted(map(bytes, np.round(images * 1000).astype(np.int32)))  # noqa
    epoch0 = np.concatenate(_collect(small_source.batches(8, shuffle_seed=5, epoch=0))[0])
    epoch1 = np.concatenate(_collect(small_source.batches(8, shuffle_seed=5, epoch=1))[0])
    seed6 = np.concatenate(_collect(small_source.batches(8, shuffle_seed=6, epoch=0))[0])
    assert key(epoch0) == key(all_images) == key(epoch1)
    assert not np.array_equal(epoch0, epoch1) and not np.array_equal(epoch0, seed6)
    assert not np.allclose(epoch0, all_images)  # actually shuffled


def test_batches_skip_resumes_exactly(small_source):
    full = _collect(small_source.batches(8, shuffle_seed=1, epoch=3))
    resumed = _collect(small_source.batches(8, shuffle_seed=1, epoch=3, skip_batches=2))
    assert len(resumed[0]) == len(full[0]) - 2
    for x, y in zip(full[0][2:], resumed[0]):
        np.testing.assert_array_equal(x, y)


def test_batches_repeat_continues_with_next_epochs(small_source):
    e0 = _collect(small_source.batches(8, shuffle_seed=1, epoch=0, drop_remainder=True))[0]
    e1 = _collect(small_source.batches(8, shuffle_seed=1, epoch=1, drop_remainder=True))[0]
    stream = small_source.batches(8, shuffle_seed=1, drop_remainder=True, repeat=True,
                                  skip_batches=3)
    assert stream.cardinality() == tf.data.INFINITE_CARDINALITY
    got = _collect(stream.take(4))[0]
    for x, y in zip(e0[3:] + e1[:3], got):
        np.testing.assert_array_equal(x, y)
    assert all(x.shape[0] == 8 for x in got)


def test_unshuffled_batches_follow_elements(small_source):
    batches = np.concatenate(_collect(small_source.batches(10))[0])
    elements = np.stack([x for x, _ in small_source.elements().as_numpy_iterator()])
    np.testing.assert_array_equal(batches, elements)
    x, y = next(iter(small_source.elements()))
    assert x.dtype == tf.float32 and x.shape == (8, 8, 3) and y.dtype == tf.int32


def test_pipelines_are_deterministic_and_not_autotuned(small_source):
    """An autotuned iterator read for minutes stalls 18-50 s when destroyed (once per
    epoch in the trainer): every pipeline a source makes turns autotuning off."""
    for ds in (small_source.batches(4, shuffle_seed=0), small_source.elements()):
        assert ds.options().deterministic is True
        assert ds.options().autotune.enabled is False


def test_load_dataset_returns_batches_and_names():
    ds, names = load_dataset("synthetic", "test", batch_size=16, limit=20, shuffle_seed=0,
                             image_size=8)
    x, y = next(ds.as_numpy_iterator())
    assert names == open_dataset("synthetic", limit=1).class_names
    assert x.shape == (16, 8, 8, 3) and y.shape == (16,)
    with pytest.raises(DatasetError, match="unknown arguments"):
        load_dataset("synthetic", batch_sise=3)


# --------------------------------------------------------------------------- errors

def test_unknown_dataset_lists_known_names():
    with pytest.raises(DatasetError) as error:
        open_dataset("imagenet21k")
    for name in ("cifar100", "fashion_mnist", "synthetic", "folder:PATH"):
        assert name in str(error.value)
    assert "folder:PATH" in known_datasets()


def test_unknown_split():
    with pytest.raises(DatasetError, match="unknown split 'valid'.*'train', 'test'"):
        open_dataset("synthetic", "valid")
    with pytest.raises(DatasetError, match="validation"):
        open_dataset("celeb_a", "dev")


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(DatasetError, match="does not exist") as error:
        open_dataset("cifar100", data_dir=str(missing))
    assert str(missing) in str(error.value)


@pytest.mark.parametrize("kwargs", [{"channels": 2}, {"image_size": 0}, {"limit": 0},
                                    {"seed": -1}])
def test_bad_arguments(kwargs):
    with pytest.raises(DatasetError):
        open_dataset("synthetic", **kwargs)


def test_bad_batch_arguments(small_source):
    for kwargs in ({"batch_size": 0}, {"batch_size": 4, "skip_batches": -1},
                   {"batch_size": 4, "shuffle_seed": -3},
                   {"batch_size": 100, "drop_remainder": True}):
        with pytest.raises(DatasetError):
            small_source.batches(**kwargs)


def test_two_channel_images_are_refused():
    with pytest.raises(DatasetError, match="2 channels"):
        standardize_array(np.zeros((1, 4, 4, 2), np.uint8), 4, 3, "two-channel source")


def test_image_source_repr_mentions_provenance(small_source):
    assert isinstance(small_source, ImageSource)
    assert "synthetic patterns" in repr(small_source)
