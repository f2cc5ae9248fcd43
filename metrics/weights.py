"""Weights for the FID Inception network, loaded without running foreign code.

Two published forms of the same ``inception-2015-12-05`` weights are read:

* the original TensorFlow release ``inception-2015-12-05.tgz`` (or the
  ``classify_image_graph_def.pb`` inside it): a GraphDef protobuf, parsed with
  ``tf.compat.v1.GraphDef().ParseFromString`` (protobuf parsing executes nothing); its
  ``Const`` nodes are mapped onto the Keras layers;
* the PyTorch port that torch-fidelity and pytorch-fid publish
  (``weights-inception-2015-12-05-6726825d.pth`` / ``pt_inception-2015-12-05-6726825d.pth``):
  a ``torch.save`` file (zip layout: ``<dir>/data.pkl`` + raw storages ``<dir>/data/<key>``,
  or the older "legacy" layout: consecutive pickles followed by the raw storages).  Its
  pickle is read by the restricted unpickler (``common.safe_pickle``), allowed only the
  torch tensor-rebuild functions, the storage classes and ``OrderedDict`` -- mapped onto
  numpy, torch is never imported -- so a malicious pickle cannot run code.

Every weight is mapped exactly once: a tensor the network lacks, or a variable of the
network the file lacks, is a :class:`MetricsError`.

Files are downloaded on first use into ``<cache>/inception/`` (cache = ``$GENBENCH_CACHE``
or ``~/.cache/genbench``) and checked against the SHA-256 digests recorded in
:data:`WEIGHT_SOURCES`.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import os
import pickle
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from common.safe_pickle import RestrictedUnpickler
from .errors import MetricsError
from .inception import HEAD_SCOPE, HEAD_TORCH, conv_units

WEIGHTS_FLAG = "--inception-weights"


# --------------------------------------------------------------------------------------
# Where the weights come from (data)
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WeightSource:
    filename: str
    url: str
    sha256: str | None  # the full digest where it is known
    sha256_prefix: str | None  # torch-hub convention: the first hex digits in the name
    note: str = ""


WEIGHT_SOURCES: tuple = (
    WeightSource(
        "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth",
        # 95,628,359 bytes; the digest several independent users of torch-fidelity record.
        "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        "6726825d",
        "torch-fidelity's conversion of the TF graph",
    ),
    WeightSource(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        None,  # same name prefix as above (most likely the same bytes); prefix checked
        "6726825d",
        "pytorch-fid's release of the same port",
    ),
    WeightSource(
        "inception-2015-12-05.tgz",
        "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz",
        None,  # no digest is published; its digest is recorded beside it on first download
        None,
        "the original TensorFlow release (GraphDef)",
    ),
)


def default_cache_dir() -> Path:
    return Path(os.environ.get("GENBENCH_CACHE") or Path.home() / ".cache" / "genbench")


def weights_dir(cache_dir=None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "inception"


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _source_for(path: Path) -> WeightSource | None:
    for source in WEIGHT_SOURCES:
        if path.name == source.filename:
            return source
    return None


def verify_checksum(path, source: WeightSource | None = None, digest: str | None = None) -> str:
    """Check ``path`` against its recorded digest (full, else the name's prefix); returns it."""
    path = Path(path)
    source = source or _source_for(path)
    digest = digest or sha256_of(path)
    if source is None:
        return digest
    if source.sha256 and digest != source.sha256:
        raise MetricsError(f"{path}: SHA-256 {digest} does not match the recorded "
                           f"{source.sha256} of {source.filename} ({source.url}); "
                           "the file is corrupt or not the published one")
    if source.sha256_prefix and not digest.startswith(source.sha256_prefix):
        raise MetricsError(f"{path}: SHA-256 {digest} does not start with {source.sha256_prefix}, "
                           f"the prefix in the file's name; the file is corrupt")
    sidecar = path.with_name(path.name + ".sha256")
    if not source.sha256 and not source.sha256_prefix and sidecar.exists():
        recorded = sidecar.read_text().split()[0]
        if recorded != digest:
            raise MetricsError(f"{path}: SHA-256 {digest} differs from {recorded} recorded in "
                               f"{sidecar} when it was downloaded; delete both to fetch it again")
    return digest


def cached_weights(cache_dir=None) -> Path | None:
    """A weights file already in the cache, if any (preferred order of WEIGHT_SOURCES)."""
    folder = weights_dir(cache_dir)
    for source in WEIGHT_SOURCES:
        if (folder / source.filename).is_file():
            return folder / source.filename
    return None


def _download(source: WeightSource, folder: Path, timeout: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.filename
    part = folder / (source.filename + f".part{os.getpid()}")
    digest = hashlib.sha256()
    print(f"[metrics] downloading {source.url}", file=sys.stderr, flush=True)
    try:
        with urllib.request.urlopen(source.url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if total and done % (16 << 20) < (1 << 20):
                    print(f"[metrics]   {done >> 20}/{total >> 20} MiB", file=sys.stderr, flush=True)
        verify_checksum(part.with_name(source.filename), source, digest.hexdigest())
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    if not source.sha256 and not source.sha256_prefix:
        target.with_name(target.name + ".sha256").write_text(
            f"{digest.hexdigest()}  {source.filename}\n")
    return target


def resolve_weights_file(inception_weights=None, cache_dir=None, *, download: bool = True,
                         timeout: float = 60.0) -> Path:
    """The weights file to use: the given path, else the cache, else a download.

    Offline and not at hand: a :class:`MetricsError` that names the URLs and the flag.
    """
    if inception_weights:
        path = Path(inception_weights).expanduser()
        if not path.is_file():
            raise MetricsError(f"{WEIGHTS_FLAG} {inception_weights}: no such file")
        return path
    cached = cached_weights(cache_dir)
    if cached is not None:
        return cached
    folder = weights_dir(cache_dir)
    urls = "\n  ".join(s.url for s in WEIGHT_SOURCES)
    hint = (f"Download one of\n  {urls}\non a machine with internet and pass "
            f"{WEIGHTS_FLAG} PATH, or put it in {folder}/ (or use the suite-trained "
            "evaluator: --metrics evaluator).")
    if not download:
        raise MetricsError(f"the Inception weights are not at hand. {hint}")
    errors = []
    for source in WEIGHT_SOURCES:
        try:
            return _download(source, folder, timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            errors.append(f"{source.url}: {err}")
    raise MetricsError("could not download the Inception weights (offline?):\n  "
                       + "\n  ".join(errors) + "\n" + hint)


# --------------------------------------------------------------------------------------
# The name table: TF GraphDef names <-> torch state-dict names <-> Keras variables
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WeightEntry:
    tf_name: str
    torch_name: str
    layer: str  # Keras layer name
    attr: str  # attribute of the Keras layer holding the variable
    kind: str  # 'conv' | 'vector' | 'dense'


_BN_NAMES = (("gamma", "weight", "gamma"), ("beta", "bias", "beta"),
             ("moving_mean", "running_mean", "moving_mean"),
             ("moving_variance", "running_var", "moving_variance"))


def weight_table() -> list[WeightEntry]:
    """Every tensor of the network: 94 convs x (kernel + 4 batch-norm vectors) + the head."""
    table = []
    for unit in conv_units():
        table.append(WeightEntry(f"{unit.tf_scope}/conv2d_params", f"{unit.torch_prefix}.conv.weight",
                                 unit.conv_layer, "kernel", "conv"))
        for tf_leaf, torch_leaf, keras_attr in _BN_NAMES:
            table.append(WeightEntry(f"{unit.tf_scope}/batchnorm/{tf_leaf}",
                                     f"{unit.torch_prefix}.bn.{torch_leaf}",
                                     unit.bn_layer, keras_attr, "vector"))
    table.append(WeightEntry(f"{HEAD_SCOPE}/weights", f"{HEAD_TORCH}.weight", HEAD_SCOPE, "kernel", "dense"))
    table.append(WeightEntry(f"{HEAD_SCOPE}/biases", f"{HEAD_TORCH}.bias", HEAD_SCOPE, "bias", "vector"))
    return table


def _to_keras(array: np.ndarray, kind: str, fmt: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if fmt == "torch":
        if kind == "conv":  # OIHW -> HWIO
            return np.ascontiguousarray(array.transpose(2, 3, 1, 0)) if array.ndim == 4 else array
        if kind == "dense":  # [out, in] -> [in, out]
            return np.ascontiguousarray(array.T) if array.ndim == 2 else array
    return array  # TF stores HWIO kernels and [in, out] matrices, as Keras does


def _is_ignorable_torch_buffer(name: str, array) -> bool:
    # BatchNorm's step counter: a scalar integer buffer, not a weight.
    return (name.endswith(".bn.num_batches_tracked") and np.size(array) == 1
            and np.issubdtype(np.asarray(array).dtype, np.integer))


def check_inception_names(tensors: dict, fmt: str) -> tuple[dict, list]:
    """(expected name -> WeightEntry, ignored buffer names); MetricsError unless ``tensors``
    (``fmt`` 'tf' or 'torch' names) holds every weight of the network and nothing else.
    Needs no network built: a wrong file is refused before the 95 MB build."""
    if fmt not in ("tf", "torch"):
        raise ValueError(fmt)
    expected = {(e.tf_name if fmt == "tf" else e.torch_name): e for e in weight_table()}
    ignored = sorted(k for k, v in tensors.items()
                     if fmt == "torch" and k not in expected and _is_ignorable_torch_buffer(k, v))
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected) - set(ignored))
    if missing or extra:
        raise MetricsError(
            f"Inception weights ({fmt} names) do not match the network: "
            f"{len(missing)} missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"{len(extra)} extra {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    return expected, ignored


def assign_inception_weights(model, tensors: dict, fmt: str) -> dict:
    """Copy ``tensors`` (``fmt`` 'tf' or 'torch' names) into ``model``, each exactly once."""
    expected, ignored = check_inception_names(tensors, fmt)
    assigned: dict[int, str] = {}
    for name, entry in expected.items():
        variable = getattr(model.get_layer(entry.layer), entry.attr)
        value = _to_keras(tensors[name], entry.kind, fmt)
        if tuple(variable.shape) != value.shape:
            raise MetricsError(f"Inception weight {name}: shape {value.shape} (as Keras) does not "
                               f"fit {variable.path} {tuple(variable.shape)}")
        if id(variable) in assigned:
            raise MetricsError(f"{name} and {assigned[id(variable)]} map to the same variable")
        variable.assign(value)
        assigned[id(variable)] = name
    left = [v.path for v in model.weights if id(v) not in assigned]
    if left:
        raise MetricsError(f"{len(left)} variables of the network got no weight: {left[:5]}")
    return {"assigned": len(assigned), "ignored": ignored}


# --------------------------------------------------------------------------------------
# TensorFlow GraphDef
# --------------------------------------------------------------------------------------
_POOL_OPS = {"avg": "AvgPool", "max": "MaxPool"}


def _check_graph_structure(nodes: dict) -> None:
    """Where the graph holds the op nodes, check they are what the Keras network does."""
    from .inception import BLOCKS, STEM, Pool  # local: avoids a cycle at import time

    for node in nodes.values():
        if node.op == "BatchNormWithGlobalNormalization":
            eps = node.attr["variance_epsilon"].f if "variance_epsilon" in node.attr else None
            if eps is not None and abs(eps - 1e-3) > 1e-9:
                raise MetricsError(f"{node.name}: variance_epsilon {eps}, expected 0.001")
            if "scale_after_normalization" in node.attr and not node.attr["scale_after_normalization"].b:
                raise MetricsError(f"{node.name}: scale_after_normalization is false")
    pools = [(p.scope, p) for p in STEM if isinstance(p, Pool)]
    for scope, _t, branches in BLOCKS:
        pools += [(f"{scope}/{p.scope}", p) for branch in branches for p in branch if isinstance(p, Pool)]
    for name, pool in pools:
        node = nodes.get(name)
        if node is not None and node.op != _POOL_OPS[pool.kind]:
            raise MetricsError(f"graph node {name} is {node.op}; the network has a {pool.kind} pool")
    for unit in conv_units():
        node = nodes.get(f"{unit.tf_scope}/Conv2D")
        if node is None:
            continue
        strides = list(node.attr["strides"].list.i) if "strides" in node.attr else None
        if strides and strides[1:3] != [unit.spec.strides] * 2:
            raise MetricsError(f"{node.name}: strides {strides}, expected {unit.spec.strides}")
        padding = node.attr["padding"].s.decode() if "padding" in node.attr else None
        if padding and max(unit.spec.kernel) > 1 and padding.lower() != unit.spec.padding:
            raise MetricsError(f"{node.name}: padding {padding}, expected {unit.spec.padding}")


def read_graphdef_tensors(graph_bytes: bytes) -> dict:
    """The weight-like constants of a serialized GraphDef as numpy arrays.

    Returned: every float ``Const`` with more than one element and every ``Const`` under
    a weight name (``*/conv2d_params``, ``*/batchnorm/*``, ``softmax/*``).  Scalars and
    integer constants (``Sub/y``, ``ResizeBilinear/size``, ``*/concat_dim``, shapes) are
    graph plumbing, not weights, and are left out.
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    graph = tf.compat.v1.GraphDef()
    try:
        graph.ParseFromString(graph_bytes)
    except DecodeError as err:
        raise MetricsError(f"not a TensorFlow GraphDef: {err}") from err
    nodes = {}
    for node in graph.node:
        if node.name in nodes:
            raise MetricsError(f"graph has two nodes named {node.name}")
        nodes[node.name] = node
    _check_graph_structure(nodes)
    tensors = {}
    for name, node in nodes.items():
        if node.op != "Const" or "value" not in node.attr:
            continue
        proto = node.attr["value"].tensor
        weight_named = (name.endswith("/conv2d_params") or "/batchnorm/" in name
                        or name.startswith(HEAD_SCOPE + "/"))
        n_elements = int(np.prod([d.size for d in proto.tensor_shape.dim])) if proto.tensor_shape.dim else 1
        is_float = proto.dtype in (tf.float16.as_datatype_enum, tf.float32.as_datatype_enum,
                                   tf.float64.as_datatype_enum, tf.bfloat16.as_datatype_enum)
        if weight_named or (is_float and n_elements > 1):
            tensors[name] = tf.make_ndarray(proto)
    return tensors


def _read_tgz_graph(path: Path) -> bytes:
    """``classify_image_graph_def.pb`` from the release tarball, read (never extracted)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar.getmembers():
                if Path(member.name).name == "classify_image_graph_def.pb":
                    if not member.isfile():
                        raise MetricsError(f"{path}: {member.name} is not a regular file")
                    return tar.extractfile(member).read()
    except tarfile.TarError as err:
        raise MetricsError(f"{path}: not a readable tar archive: {err}") from err
    raise MetricsError(f"{path}: no classify_image_graph_def.pb inside")


# --------------------------------------------------------------------------------------
# torch.save files, read with a restricted unpickler
# --------------------------------------------------------------------------------------
_STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "LongStorage": "i8",
    "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "UntypedStorage": "u1",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co: only its element type matters."""

    name: str
    dtype: str


@dataclasses.dataclass
class _Storage:
    key: str
    stype: _StorageType
    numel: int
    array: np.ndarray | None = None


@dataclasses.dataclass
class _PendingTensor:
    """What ``torch._utils._rebuild_tensor_v2`` would build, resolved once storages are read."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    def resolve(self) -> np.ndarray:
        data = self.storage.array
        if data is None:
            raise MetricsError(f"storage {self.storage.key} was never read")
        size = tuple(int(s) for s in self.size)
        stride = tuple(int(s) for s in self.stride)
        if len(size) != len(stride) or self.offset < 0 or any(s < 0 for s in size + stride):
            raise MetricsError(f"malformed tensor record (size {size}, stride {stride})")
        if size and min(size) == 0:
            return np.zeros(size, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= data.size:
            raise MetricsError(f"tensor reaches element {last} of a storage of {data.size}")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=size, strides=[s * data.itemsize for s in stride], writeable=False)
        return np.array(view)  # a copy: owns its memory


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise MetricsError("tensor record without a storage")
    return _PendingTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *extra):
    return data


#: What a tensor state dict's pickle may name (``common.safe_pickle``): the tensor-rebuild
#: functions (mapped onto numpy), the storage types and ``OrderedDict``.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


def _refused(what: str) -> MetricsError:
    return MetricsError(f"refused to load the weights: the pickle asks for {what}, "
                        "which a tensor state dict never needs (a malicious or unknown file)")


def _storage_loader(storages: dict):
    """The persistent-id reader of a torch pickle: each storage record becomes a
    ``_Storage`` in ``storages`` (key -> _Storage), whose bytes are read after the pickle."""
    def persistent_load(pid):
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or (len(pid) == 6 and pid[5] is not None)):
            raise MetricsError(f"refused to load the weights: unknown persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid[:5]
        key = str(key)
        storage = storages.get(key)
        if storage is None:
            storage = storages[key] = _Storage(key, stype, int(numel))
        return storage
    return persistent_load


def _torch_unpickler(file, storages: dict) -> RestrictedUnpickler:
    """The restricted unpickler of a torch pickle: only ``_ALLOWED_GLOBALS``; storages
    are collected into ``storages``."""
    return RestrictedUnpickler(file, _ALLOWED_GLOBALS, refuse=_refused,
                               persistent_load=_storage_loader(storages))


def _storage_array(raw: bytes, stype: _StorageType, numel: int, key: str, big_endian=False) -> np.ndarray:
    dtype = np.dtype(stype.dtype).newbyteorder(">" if big_endian else "<")
    if stype.name == "UntypedStorage":
        numel = len(raw)
    if len(raw) < numel * dtype.itemsize:
        raise MetricsError(f"storage {key}: {len(raw)} bytes for {numel} x {dtype}")
    array = np.frombuffer(raw, dtype=dtype, count=numel)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _resolve_tree(obj):
    if isinstance(obj, _PendingTensor):
        return obj.resolve()
    if isinstance(obj, dict):
        return {k: _resolve_tree(v) for k, v in obj.items()}
    raise MetricsError(f"the checkpoint holds a {type(obj).__name__} where tensors were expected")


def _load_zip_state_dict(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise MetricsError(f"{path}: expected one <dir>/data.pkl in the zip, found {pickles}")
        prefix = pickles[0][: -len("data.pkl")]
        big_endian = False
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").decode().strip()
            if order not in ("little", "big"):
                raise MetricsError(f"{path}: unknown byteorder {order!r}")
            big_endian = order == "big"

        def reader(key: str) -> bytes:
            member = f"{prefix}data/{key}"
            if member not in names:
                raise MetricsError(f"{path}: storage {member} is missing")
            return archive.read(member)

        storages: dict = {}
        unpickler = _torch_unpickler(io.BytesIO(archive.read(pickles[0])), storages)
        obj = unpickler.load()
        for key, storage in storages.items():
            storage.array = _storage_array(reader(key), storage.stype, storage.numel, key, big_endian)
    return _resolve_tree(obj)


def _load_legacy_state_dict(path: Path) -> dict:
    with open(path, "rb") as f:
        def header():
            return _torch_unpickler(f, {}).load()

        try:
            magic = header()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise MetricsError(f"{path}: neither a zip nor a legacy torch file: {err}") from err
        if magic != _LEGACY_MAGIC:
            raise MetricsError(f"{path}: not a torch checkpoint (bad magic number)")
        if header() != _LEGACY_PROTOCOL:
            raise MetricsError(f"{path}: unsupported legacy torch protocol")
        sys_info = header()
        big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
        storages: dict = {}
        obj = _torch_unpickler(f, storages).load()
        keys = header()
        if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
            raise MetricsError(f"{path}: storage key list does not match the tensors")
        for key in map(str, keys):
            storage = storages[key]
            count = np.frombuffer(f.read(8), dtype=">i8" if big_endian else "<i8")
            if count.size != 1 or int(count[0]) < storage.numel:
                raise MetricsError(f"{path}: storage {key} is truncated")
            itemsize = np.dtype(storage.stype.dtype).itemsize
            raw = f.read(int(count[0]) * itemsize)
            storage.array = _storage_array(raw, storage.stype, int(count[0]), key, big_endian)
    return _resolve_tree(obj)


def read_torch_state_dict(path) -> dict:
    """A ``torch.save``d state dict as ``{name: np.ndarray}``, without torch, code-free."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip_state_dict(path)
        return _load_legacy_state_dict(path)
    except MetricsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, zipfile.BadZipFile) as err:
        raise MetricsError(f"{path}: unreadable torch checkpoint: {type(err).__name__}: {err}") from err


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------
def detect_format(path) -> str:
    """'pth' (torch zip or legacy), 'tgz' (the TF release tarball) or 'pb' (a bare GraphDef)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        return "pth"
    if head[:2] == b"\x1f\x8b" or Path(path).suffix in (".tgz", ".tar"):
        return "tgz"
    if head[:1] == b"\x80":  # a pickle: the legacy torch layout
        return "pth"
    return "pb"


def read_inception_tensors(path, *, verify: bool = True) -> tuple[dict, str, str | None]:
    """(tensors by name, 'tf' | 'torch' naming, SHA-256 or None) of a weights file, checked
    against the recorded digest first and then for exactly the network's tensor names;
    any unreadable or unfit file is a one-line MetricsError.

    Needs no network built, so run_all.py calls it (through
    ``metrics.inception_feature_network``) before anything trains.
    """
    path = Path(path)
    try:
        digest = verify_checksum(path) if verify else None
        fmt = detect_format(path)
        if fmt == "pth":
            tensors, naming = read_torch_state_dict(path), "torch"
        else:
            data = _read_tgz_graph(path) if fmt == "tgz" else path.read_bytes()
            tensors, naming = read_graphdef_tensors(data), "tf"
        check_inception_names(tensors, naming)
        return tensors, naming, digest
    except MetricsError as err:
        message = " ".join(str(err).split())  # one line, whatever a reader said
        raise MetricsError(message if str(path) in message else f"{path}: {message}") from err
    except Exception as err:  # a file crafted or damaged in a way the readers did not foresee
        raise MetricsError(f"{path}: not usable as Inception weights ({type(err).__name__}: "
                           f"{err}); pass the published .pth or inception-2015-12-05.tgz") from err


def load_inception_weights(model, path, *, verify: bool = True, tensors=None) -> dict:
    """Load ``path`` (.pth / .tgz / .pb) into a :func:`build_fid_inception` model.

    tensors: what :func:`read_inception_tensors` returned for ``path``, if already read.
    """
    path = Path(path)
    tensors, naming, digest = tensors or read_inception_tensors(path, verify=verify)
    report = assign_inception_weights(model, tensors, naming)
    fmt = "pth" if naming == "torch" else detect_format(path)
    return {**report, "format": fmt, "sha256": digest, "path": str(path)}
