"""The FID Inception network: preprocessing, structure, and weight loading from a GraphDef
and from torch .pth files (written here byte by byte, without torch), the refusal of
malicious pickles, checksums, and the offline error."""
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import metrics
from metrics import inception, weights
from metrics.errors import MetricsError

RNG_SEED = 1234


# ====================================================================== preprocessing
@pytest.mark.parametrize("size", [(28, 28), (32, 32), (64, 64), (7, 13), (299, 299), (300, 301)])
def test_resize_is_bit_identical_to_tf1_resize_bilinear(size):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, *size, 3)).astype(np.float32)
    ours = inception.tf1_resize_bilinear(images).numpy()
    reference = tf.compat.v1.image.resize_bilinear(images, (299, 299), align_corners=False,
                                                   half_pixel_centers=False).numpy()
    assert ours.dtype == np.float32 and ours.shape == (2, 299, 299, 3)
    assert np.array_equal(ours, reference)


def _legacy_bilinear_numpy(image, out_h, out_w):
    """TF1 legacy sampling: source coordinate = i * in / out (no half-pixel shift)."""
    in_h, in_w = image.shape[:2]
    ys = np.arange(out_h) * (in_h / out_h)
    xs = np.arange(out_w) * (in_w / out_w)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, in_h - 1), np.minimum(x0 + 1, in_w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
    bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def test_resize_uses_legacy_sampling_not_half_pixel_centres():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    ours = inception.tf1_resize_bilinear(image).numpy()[0]
    np.testing.assert_allclose(ours, _legacy_bilinear_numpy(image[0].astype(np.float64), 299, 299),
                               atol=2e-3)
    half_pixel = tf.image.resize(image, (299, 299), method="bilinear").numpy()[0]
    assert np.abs(ours - half_pixel).max() > 1.0  # the TF2 default is a different resize


def test_preprocess_scales_gray_and_rgb_like_the_graph():
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (3, 32, 32, 1)).astype(np.float32)
    gray = pixels / 127.5 - 1.0  # what the data package yields for uint8 pixels
    out_gray = inception.preprocess(gray).numpy()
    out_rgb = inception.preprocess(np.repeat(gray, 3, axis=-1)).numpy()
    assert out_gray.shape == (3, 299, 299, 3)
    assert np.array_equal(out_gray, out_rgb)
    expected = (tf.compat.v1.image.resize_bilinear(np.repeat(pixels, 3, -1), (299, 299),
                                                   half_pixel_centers=False).numpy() - 128.0) / 128.0
    assert np.array_equal(out_rgb, expected)  # uint8 pixels come back exactly, then (x-128)/128
    assert out_rgb.min() >= -1.0 and out_rgb.max() <= 127.0 / 128.0


# ====================================================================== the network
@pytest.fixture(scope="module")
def model():
    return inception.build_fid_inception()


@pytest.fixture(scope="module")
def random_weights(model):
    """{WeightEntry: float32 array in Keras layout} for every tensor of the network."""
    rng = np.random.default_rng(RNG_SEED)
    values = {}
    for entry in weights.weight_table():
        variable = getattr(model.get_layer(entry.layer), entry.attr)
        values[entry] = rng.standard_normal(tuple(variable.shape)).astype(np.float32)
    return values


def test_network_structure(model):
    assert set(model.output) == {"pool_3", "logits_unbiased"}
    assert tuple(model.input.shape) == (None, 299, 299, 3)
    assert tuple(model.output["pool_3"].shape) == (None, 2048)
    assert tuple(model.output["logits_unbiased"].shape) == (None, 1008)
    head = model.get_layer("softmax")
    assert tuple(head.kernel.shape) == (2048, 1008) and tuple(head.bias.shape) == (1008,)
    # the quirk of this graph: mixed_10 (Mixed_7c) pools its branch with a max pool
    assert isinstance(model.get_layer("mixed_10.tower_2.pool"), keras.layers.MaxPooling2D)
    assert isinstance(model.get_layer("mixed_9.tower_2.pool"), keras.layers.AveragePooling2D)
    assert model.get_layer("mixed_10.join").output.shape[-1] == 2048
    assert model.get_layer("mixed_7.join").output.shape[1:] == (17, 17, 768)
    assert model.get_layer("mixed_2.join").output.shape[1:] == (35, 35, 288)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(bns) == len(convs) == 94
    assert all(bn.epsilon == 1e-3 and bn.scale and bn.center for bn in bns)
    assert all(not conv.use_bias for conv in convs)
    assert model.count_params() == 23_885_392
    assert len(weights.weight_table()) == len(model.weights) == 472


def test_average_pools_exclude_padding(model):
    pool = model.get_layer("mixed.tower_2.pool")
    x = np.random.default_rng(3).uniform(size=(1, 5, 5, 2)).astype(np.float32)
    out = pool(x).numpy()
    # corner: the mean of the 4 valid pixels (count_include_pad=False), not their sum / 9
    assert out[0, 0, 0] == pytest.approx(x[0, :2, :2].mean(axis=(0, 1)), rel=1e-6)
    assert out[0, 2, 2] == pytest.approx(x[0, 1:4, 1:4].mean(axis=(0, 1)), rel=1e-6)


def test_logits_are_unbiased(model):
    head = model.get_layer("softmax")
    rng = np.random.default_rng(4)
    features = rng.standard_normal((2, 2048)).astype(np.float32)
    head.bias.assign(np.full(1008, 100.0, np.float32))
    head.kernel.assign(rng.standard_normal((2048, 1008)).astype(np.float32) * 0.01)
    np.testing.assert_allclose(head(features).numpy(), features @ head.kernel.numpy(), rtol=1e-5,
                               atol=1e-4)
    np.testing.assert_allclose(head.biased(features).numpy() - head(features).numpy(), 100.0, atol=1e-3)


def test_name_table_agrees_with_the_reference_names():
    # a sample of the reference pairs (torch-fidelity's TF->torch conversion) and TF shapes
    by_tf = {e.tf_name: e for e in weights.weight_table()}
    pairs = {
        "conv/conv2d_params": "Conv2d_1a_3x3.conv.weight",
        "conv_4/batchnorm/moving_variance": "Conv2d_4a_3x3.bn.running_var",
        "mixed/tower/conv_1/conv2d_params": "Mixed_5b.branch5x5_2.conv.weight",
        "mixed_3/tower/conv_2/batchnorm/beta": "Mixed_6a.branch3x3dbl_3.bn.bias",
        "mixed_4/tower_1/conv_4/conv2d_params": "Mixed_6b.branch7x7dbl_5.conv.weight",
        "mixed_8/tower_1/conv_3/batchnorm/gamma": "Mixed_7a.branch7x7x3_4.bn.weight",
        "mixed_9/tower/mixed/conv_1/conv2d_params": "Mixed_7b.branch3x3_2b.conv.weight",
        "mixed_10/tower_1/mixed/conv/batchnorm/moving_mean": "Mixed_7c.branch3x3dbl_3a.bn.running_mean",
        "mixed_10/tower_2/conv/conv2d_params": "Mixed_7c.branch_pool.conv.weight",
        "softmax/weights": "fc.weight",
        "softmax/biases": "fc.bias",
    }
    for tf_name, torch_name in pairs.items():
        assert by_tf[tf_name].torch_name == torch_name
    units = {u.tf_scope: u.spec for u in inception.conv_units()}
    assert units["conv"].kernel == (3, 3) and units["conv"].filters == 32 and units["conv"].strides == 2
    assert units["mixed_4/tower/conv_1"].kernel == (1, 7)
    assert units["mixed_4/tower_1/conv_1"].kernel == (7, 1)
    assert units["mixed_9/tower_1/conv"].filters == 448


# ====================================================================== GraphDef
def _const(graph, name, array):
    node = graph.node.add()
    node.name, node.op = name, "Const"
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(array))
    node.attr["dtype"].type = tf.as_dtype(np.asarray(array).dtype).as_datatype_enum
    return node


def _op(graph, name, op, **attrs):
    node = graph.node.add()
    node.name, node.op = name, op
    for key, value in attrs.items():
        if isinstance(value, float):
            node.attr[key].f = value
        elif isinstance(value, bool):
            node.attr[key].b = value
        elif isinstance(value, bytes):
            node.attr[key].s = value
        else:
            node.attr[key].list.i.extend(value)
    return node


def _graphdef(random_weights, *, drop=None, extra=None, pool_op="MaxPool", eps=1e-3):
    graph = tf.compat.v1.GraphDef()
    # graph plumbing the real classify_image_graph_def.pb holds besides the weights
    _const(graph, "Sub/y", np.float32(128.0))
    _const(graph, "Mul/y", np.float32(1.0 / 128.0))
    _const(graph, "ResizeBilinear/size", np.array([299, 299], np.int32))
    _const(graph, "mixed/join/concat_dim", np.int32(3))
    _const(graph, "pool_3/_reshape/shape", np.array([1, 2048], np.int32))
    _op(graph, "conv/Conv2D", "Conv2D", strides=[1, 2, 2, 1], padding=b"VALID")
    _op(graph, "conv/batchnorm", "BatchNormWithGlobalNormalization", variance_epsilon=eps,
        scale_after_normalization=True)
    _op(graph, "mixed_9/tower_2/pool", "AvgPool")
    _op(graph, "mixed_10/tower_2/pool", pool_op)
    for entry, value in random_weights.items():
        if entry.tf_name != drop:
            _const(graph, entry.tf_name, value)  # TF layout == Keras layout
    for name, value in (extra or {}).items():
        _const(graph, name, value)
    return graph.SerializeToString()


def _assert_loaded(model, random_weights):
    for entry, value in random_weights.items():
        variable = getattr(model.get_layer(entry.layer), entry.attr)
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=entry.tf_name)


def _scramble(model):
    for variable in model.weights:
        variable.assign(np.zeros(variable.shape, np.float32))


def test_graphdef_weights_map_onto_the_network_exactly_once(model, random_weights, tmp_path):
    path = tmp_path / "classify_image_graph_def.pb"
    path.write_bytes(_graphdef(random_weights))
    _scramble(model)
    report = weights.load_inception_weights(model, path)
    assert report["format"] == "pb" and report["assigned"] == 472
    _assert_loaded(model, random_weights)

    # the release tarball, read without extracting
    tgz = tmp_path / "inception-2015-12-05.tgz"
    with tarfile.open(tgz, "w:gz", compresslevel=0) as tar:  # gzip framing, fast
        tar.add(path, arcname="classify_image_graph_def.pb")
    _scramble(model)
    assert weights.load_inception_weights(model, tgz)["format"] == "tgz"
    _assert_loaded(model, random_weights)


def test_graphdef_missing_or_extra_tensor_is_an_error(model, random_weights):
    with pytest.raises(MetricsError, match="1 missing.*mixed_5/tower_1/conv_2/batchnorm/gamma"):
        weights.assign_inception_weights(
            model, weights.read_graphdef_tensors(
                _graphdef(random_weights, drop="mixed_5/tower_1/conv_2/batchnorm/gamma")), "tf")
    extra = {"mixed_11/conv/conv2d_params": np.zeros((1, 1, 4, 4), np.float32)}
    with pytest.raises(MetricsError, match="1 extra.*mixed_11/conv/conv2d_params"):
        weights.assign_inception_weights(
            model, weights.read_graphdef_tensors(_graphdef(random_weights, extra=extra)), "tf")
    unknown_float = {"aux/logits/weights_like": np.zeros((3, 3), np.float32)}
    with pytest.raises(MetricsError, match="extra"):
        weights.assign_inception_weights(
            model, weights.read_graphdef_tensors(_graphdef(random_weights, extra=unknown_float)), "tf")


def test_graphdef_with_another_structure_is_refused(random_weights):
    with pytest.raises(MetricsError, match="mixed_10/tower_2/pool"):
        weights.read_graphdef_tensors(_graphdef(random_weights, pool_op="AvgPool"))
    with pytest.raises(MetricsError, match="variance_epsilon"):
        weights.read_graphdef_tensors(_graphdef(random_weights, eps=1e-5))
    with pytest.raises(MetricsError, match="GraphDef"):
        weights.read_graphdef_tensors(b"\xff\xff\xff not a protobuf")


def test_wrong_shape_is_an_error(model, random_weights):
    tensors = {e.tf_name: v for e, v in random_weights.items()}
    tensors["mixed_4/tower/conv_1/conv2d_params"] = np.zeros((7, 1, 128, 128), np.float32)
    with pytest.raises(MetricsError, match="shape"):
        weights.assign_inception_weights(model, tensors, "tf")


# ====================================================================== torch .pth files
class _PickleWriter:
    """Just enough pickle opcodes (protocol 2) to write what torch.save writes."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")

    def glob(self, module, name):
        self.out += b"c" + f"{module}\n{name}\n".encode()

    def text(self, s):
        data = s.encode()
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def int(self, i):
        self.out += b"J" + struct.pack("<i", i)

    def ints(self, values):
        self.out += b"("
        for v in values:
            self.int(v)
        self.out += b"t"

    def raw(self, opcodes):
        self.out += opcodes


def _torch_pickle(records, legacy):
    """records: [(name, storage_key, storage_class, numel, offset, size, stride)]."""
    p = _PickleWriter()
    p.glob("collections", "OrderedDict")
    p.raw(b")R(")  # OrderedDict(), MARK
    for name, key, storage_class, numel, offset, size, stride in records:
        p.text(name)
        p.glob("torch._utils", "_rebuild_tensor_v2")
        p.raw(b"((")  # MARK args, MARK persistent id
        p.text("storage")
        p.glob("torch", storage_class)
        p.text(key)
        p.text("cpu")
        p.int(numel)
        if legacy:
            p.raw(b"N")  # view_metadata
        p.raw(b"tQ")  # TUPLE, BINPERSID
        p.int(offset)
        p.ints(size)
        p.ints(stride)
        p.raw(b"\x89")  # requires_grad=False
        p.glob("collections", "OrderedDict")
        p.raw(b")RtR")  # backward_hooks=OrderedDict(); TUPLE args; REDUCE
    p.raw(b"u.")  # SETITEMS, STOP
    return bytes(p.out)


def _torch_layout(random_weights, *, drop=None, extra=None, num_batches_tracked=False):
    """Storages and tensor records as torch.save would write this state dict.

    Most tensors own a contiguous storage; the head's weight is saved as a transposed
    view (stride (1, 1008)) and two batch-norm vectors share one storage at an offset.
    """
    storages, records = {}, []

    def add(name, storage_class, data, size, stride, offset=0, key=None):
        key = key or str(len(storages))
        if key not in storages:
            storages[key] = data
        records.append((name, key, storage_class, int(storages[key].size), offset, size, stride))

    shared = None
    for entry, value in random_weights.items():
        name = entry.torch_name
        if name == drop:
            continue
        if entry.kind == "conv":  # HWIO -> OIHW, contiguous
            oihw = np.ascontiguousarray(value.transpose(3, 2, 0, 1))
            c = oihw.shape
            add(name, "FloatStorage", oihw.ravel(), c, (c[1] * c[2] * c[3], c[2] * c[3], c[3], 1))
        elif entry.kind == "dense":  # torch [1008, 2048] as a view of the [2048, 1008] buffer
            add(name, "FloatStorage", np.ascontiguousarray(value).ravel(), (1008, 2048), (1, 1008))
        elif name == "Conv2d_1a_3x3.bn.running_mean":
            shared = value
        elif name == "Conv2d_1a_3x3.bn.running_var":
            both = np.concatenate([shared, value])
            add("Conv2d_1a_3x3.bn.running_mean", "FloatStorage", both, (32,), (1,), 0, key="shared")
            add(name, "FloatStorage", both, (32,), (1,), 32, key="shared")
        else:
            add(name, "FloatStorage", value.ravel(), value.shape, (1,))
        if num_batches_tracked and name.endswith(".bn.running_var"):
            add(name.replace("running_var", "num_batches_tracked"), "LongStorage",
                np.array([7], np.int64), (), ())
    for name, value in (extra or {}).items():
        add(name, "FloatStorage", value.ravel(), value.shape, (1,) * value.ndim)
    return storages, records


def _write_zip_pth(path, storages, records, pickled=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickled or _torch_pickle(records, legacy=False))
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data.astype(data.dtype.newbyteorder("<")).tobytes())
        archive.writestr("archive/version", "3\n")


def _write_legacy_pth(path, storages, records, pickled=None):
    with open(path, "wb") as f:
        f.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
        f.write(pickled or _torch_pickle(records, legacy=True))
        f.write(pickle.dumps(sorted(storages), protocol=2))
        for key in sorted(storages):
            f.write(struct.pack("<q", storages[key].size))
            f.write(storages[key].astype(storages[key].dtype.newbyteorder("<")).tobytes())


@pytest.mark.parametrize("writer", [_write_zip_pth, _write_legacy_pth], ids=["zip", "legacy"])
def test_pth_weights_map_onto_the_network_exactly_once(model, random_weights, tmp_path, writer):
    path = tmp_path / "weights.pth"
    writer(path, *_torch_layout(random_weights, num_batches_tracked=True))
    _scramble(model)
    report = weights.load_inception_weights(model, path)
    assert report["format"] == "pth" and report["assigned"] == 472 and len(report["ignored"]) == 94
    _assert_loaded(model, random_weights)


@pytest.mark.parametrize("writer", [_write_zip_pth, _write_legacy_pth], ids=["zip", "legacy"])
def test_pth_missing_or_extra_tensor_is_an_error(model, random_weights, tmp_path, writer):
    path = tmp_path / "missing.pth"
    writer(path, *_torch_layout(random_weights, drop="Mixed_6e.branch7x7dbl_3.bn.bias"))
    with pytest.raises(MetricsError, match="1 missing.*Mixed_6e.branch7x7dbl_3.bn.bias"):
        weights.load_inception_weights(model, path)
    path = tmp_path / "extra.pth"
    writer(path, *_torch_layout(random_weights, extra={"AuxLogits.fc.weight": np.zeros((3, 4), np.float32)}))
    with pytest.raises(MetricsError, match="1 extra.*AuxLogits.fc.weight"):
        weights.load_inception_weights(model, path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", [_write_zip_pth, _write_legacy_pth], ids=["zip", "legacy"])
def test_malicious_pickle_is_refused(model, tmp_path, writer):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"fc.weight": _Evil(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    writer(path, {}, [], pickled=evil)
    with pytest.raises(MetricsError, match="refused"):
        weights.load_inception_weights(model, path)
    assert not marker.exists()
    # a global smuggled in next to legitimate tensor records
    p = _PickleWriter()
    p.glob("builtins", "eval")
    p.text("print('hi')")
    p.raw(b"\x85R.")
    path2 = tmp_path / "evil2.pth"
    writer(path2, {}, [], pickled=bytes(p.out))
    with pytest.raises(MetricsError, match="builtins.eval"):
        weights.read_torch_state_dict(path2)


def test_pth_with_out_of_range_view_is_refused(random_weights, tmp_path):
    storages = {"0": np.zeros(10, np.float32)}
    records = [("fc.bias", "0", "FloatStorage", 10, 5, (8,), (1,))]
    path = tmp_path / "bad.pth"
    _write_zip_pth(path, storages, records)
    with pytest.raises(MetricsError, match="storage"):
        weights.read_torch_state_dict(path)


def test_graphdef_and_pth_give_the_same_network(model, random_weights, tmp_path):
    """Same weights through both formats (torch layout = transposed) -> same outputs."""
    pb, pth = tmp_path / "g.pb", tmp_path / "w.pth"
    pb.write_bytes(_graphdef(random_weights))
    _write_zip_pth(pth, *_torch_layout(random_weights))
    weights.load_inception_weights(model, pb)
    from_tf = [v.numpy() for v in model.weights]
    _scramble(model)
    weights.load_inception_weights(model, pth)
    for a, b in zip(from_tf, model.weights):
        np.testing.assert_array_equal(a, b.numpy())


# ====================================================================== feature pipeline
@pytest.mark.slow
def test_inception_feature_network_streams_like_the_bare_model(model, random_weights):
    # small weights so that activations stay finite through 94 random layers
    for entry, value in random_weights.items():
        variable = getattr(model.get_layer(entry.layer), entry.attr)
        scale = {"conv": np.sqrt(2.0 / np.prod(value.shape[:3])) if value.ndim == 4 else 1.0,
                 "dense": 0.02}.get(entry.kind, 0.1)
        if entry.attr == "moving_variance":
            variable.assign(np.abs(value) * 0.5 + 0.5)
        elif entry.attr == "gamma":
            variable.assign(np.ones_like(value))
        else:
            variable.assign(value * scale)
    net = metrics.inception_feature_network(model=model)
    runner = metrics.FeatureRunner(net)
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (3, 28, 28, 1)).astype(np.float32) / 127.5 - 1.0
    features, logits = runner(gray)
    direct = model(inception.preprocess(np.repeat(gray, 3, -1)), training=False)
    np.testing.assert_allclose(features, direct["pool_3"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, direct["logits_unbiased"].numpy(), rtol=1e-5, atol=1e-4)
    assert np.isfinite(features).all() and features.std() > 0


def test_inception_feature_network_from_a_weights_file(random_weights, tmp_path):
    path = tmp_path / "my-inception-port.pth"  # not a published name: no digest to check
    _write_zip_pth(path, *_torch_layout(random_weights))
    net = metrics.inception_feature_network(str(path), tmp_path)
    assert (net.label, net.feature_dim, net.num_classes) == ("inception-2015-12-05", 2048, 1008)
    model = next(iter(metrics._INCEPTION_CACHE.values()))
    head = next(e for e in random_weights if e.tf_name == "softmax/weights")
    np.testing.assert_array_equal(model.get_layer("softmax").kernel.numpy(), random_weights[head])
    metrics.inception_feature_network(str(path), tmp_path)
    assert next(iter(metrics._INCEPTION_CACHE.values())) is model  # built once per process
    metrics._INCEPTION_CACHE.clear()


# ====================================================================== files, checksums, offline
def test_checksums_are_verified(tmp_path):
    good = tmp_path / "a.bin"
    good.write_bytes(b"payload")
    digest = weights.sha256_of(good)
    source = weights.WeightSource("a.bin", "https://example.invalid/a.bin", digest, digest[:8])
    assert weights.verify_checksum(good, source) == digest
    with pytest.raises(MetricsError, match="does not match"):
        weights.verify_checksum(good, weights.WeightSource("a.bin", "u", "0" * 64, None))
    with pytest.raises(MetricsError, match="prefix"):
        weights.verify_checksum(good, weights.WeightSource("a.bin", "u", None, "00000000"))
    # a file with a known name is checked against the recorded digest
    fake = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(MetricsError, match="does not match"):
        weights.verify_checksum(fake)
    recorded = {s.filename: s for s in weights.WEIGHT_SOURCES}
    assert recorded["weights-inception-2015-12-05-6726825d.pth"].sha256.startswith("6726825d")
    assert recorded["pt_inception-2015-12-05-6726825d.pth"].sha256_prefix == "6726825d"


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    payload = b"weights bytes" * 1000
    import hashlib
    digest = hashlib.sha256(payload).hexdigest()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(weights.urllib.request, "urlopen", lambda url, timeout: Response(payload))
    good = weights.WeightSource("w.pth", "https://example.invalid/w.pth", digest, None)
    path = weights._download(good, tmp_path / "inception", timeout=1)
    assert path.read_bytes() == payload
    bad = weights.WeightSource("v.pth", "https://example.invalid/v.pth", "1" * 64, None)
    with pytest.raises(MetricsError):
        weights._download(bad, tmp_path / "inception", timeout=1)
    assert not list((tmp_path / "inception").glob("v.pth*"))  # nothing half-written stays


def test_offline_without_weights_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(weights.urllib.request, "urlopen", offline)
    with pytest.raises(MetricsError) as err:
        weights.resolve_weights_file(None, tmp_path)
    text = str(err.value)
    assert "--inception-weights" in text
    assert all(source.url in text for source in weights.WEIGHT_SOURCES)
    with pytest.raises(MetricsError, match="--inception-weights"):
        metrics.resolve_metric_network("inception", inception_weights=None, cache_dir=tmp_path)


def test_resolve_metric_network(tmp_path, monkeypatch):
    monkeypatch.setattr(weights.urllib.request, "urlopen",
                        lambda url, timeout: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    resolve = metrics.resolve_metric_network
    assert resolve("auto", inception_weights=None, cache_dir=tmp_path) == "evaluator"
    assert resolve("none", inception_weights=None, cache_dir=tmp_path) == "none"
    assert resolve("evaluator", inception_weights=None, cache_dir=tmp_path) == "evaluator"
    given = tmp_path / "my.pth"
    given.write_bytes(b"x")
    assert resolve("auto", inception_weights=str(given), cache_dir=tmp_path) == "inception"
    assert resolve("inception", inception_weights=str(given), cache_dir=tmp_path) == "inception"
    with pytest.raises(MetricsError, match="no such file"):
        resolve("auto", inception_weights=str(tmp_path / "absent.pth"), cache_dir=tmp_path)
    (tmp_path / "inception").mkdir()
    (tmp_path / "inception" / "inception-2015-12-05.tgz").write_bytes(b"x")
    assert resolve("auto", inception_weights=None, cache_dir=tmp_path) == "inception"
    with pytest.raises(MetricsError, match="unknown"):
        resolve("vgg", inception_weights=None, cache_dir=tmp_path)
