"""The two files that say what a run folder holds, as types.

``config.json`` (:class:`RunConfig`) is written first: what the run is (its identity,
which must match for the folder to be reused or resumed) and what rebuilds its model.
``metrics.json`` is written last, so a run is complete exactly when it exists: what a
table row's run reached (:class:`RunMetrics`) or what a family's shared first stage
reached (:class:`StageMetrics`).

Every reader and writer of these files goes through these records: the field names are
the files' keys (``is``, a Python keyword, is the field ``is_``). A record keeps what a
file holds beyond its layout (a family's own first-stage figures, keys of other
versions) in ``extra``, and the layout keys a file lacks (runs written before a key
existed, folders a test wrote by hand) in ``missing``: such keys read as None and are
not written back, so reading and writing a file leaves its bytes as they were.
Optional keys (``OPTIONAL``) are written only when they hold a value.

A record is also a read-only mapping of the file's keys (``metrics["fid"]``,
``metrics.get("sampler")``), equal to the dict of its JSON.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import os
import typing

from common import files

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


class NotARecord(ValueError):
    """The file holds JSON, but not an object."""


def _key(field) -> str:
    return field.metadata.get("key", field.name)


@dataclasses.dataclass(eq=False)
class _Record(collections.abc.Mapping):
    FILE: typing.ClassVar[str]
    #: layout keys written only when they hold a value (None: not written)
    OPTIONAL: typing.ClassVar[frozenset] = frozenset()

    #: keys of the file that the layout does not name, kept as they are
    extra: dict = dataclasses.field(default_factory=dict, kw_only=True, repr=False)
    #: layout keys the file lacked (read as None, not written back)
    missing: frozenset = dataclasses.field(default=frozenset(), kw_only=True, repr=False)

    @classmethod
    def _layout(cls) -> dict:
        """{file key: field} of the layout, in the order the fields are declared."""
        return {_key(f): f for f in dataclasses.fields(cls) if f.name not in ("extra", "missing")}

    @classmethod
    def from_json(cls, data) -> "_Record":
        """The record of a file's parsed JSON; NotARecord when it is not an object."""
        if not isinstance(data, dict):
            raise NotARecord(f"a JSON {type(data).__name__}, not an object")
        layout = cls._layout()
        return cls(**{f.name: data[key] for key, f in layout.items() if key in data},
                   extra={k: v for k, v in data.items() if k not in layout},
                   missing=frozenset(k for k in layout if k not in data))

    def to_json(self) -> dict:
        """The file's content: the layout's keys (less the missing ones and the optional
        ones without a value), then ``extra``."""
        out = {}
        for key, field in self._layout().items():
            value = getattr(self, field.name)
            if key in self.missing or (key in self.OPTIONAL and value is None):
                continue
            out[key] = value
        out.update(self.extra)
        return out

    def updated(self, values: typing.Mapping) -> "_Record":
        """A copy with ``values`` (file keys) set: the layout's as fields, others in extra."""
        layout = self._layout()
        return dataclasses.replace(
            self, **{layout[k].name: v for k, v in values.items() if k in layout},
            extra={**self.extra, **{k: v for k, v in values.items() if k not in layout}},
            missing=self.missing - set(values))

    @classmethod
    def path(cls, run_dir) -> str:
        return os.path.join(os.fspath(run_dir), cls.FILE)

    @classmethod
    def read(cls, run_dir) -> "_Record":
        """The record in ``run_dir``: OSError when the file cannot be read, ValueError when
        it is not JSON, NotARecord when its JSON is not an object."""
        return cls.from_json(files.read_json(cls.path(run_dir)))

    def write(self, run_dir):
        """Into ``run_dir`` (atomically: the previous version or this one, never half)."""
        files.write_json(self.path(run_dir), self.to_json())

    # the read-only mapping of the file's keys
    def __getitem__(self, key):
        field = self._layout().get(key)
        if field is None:
            return self.extra[key]
        value = getattr(self, field.name)
        if key in self.missing or (key in self.OPTIONAL and value is None):
            raise KeyError(key)
        return value

    def __iter__(self):
        return iter(self.to_json())

    def __len__(self):
        return len(self.to_json())


@dataclasses.dataclass(eq=False)
class RunConfig(_Record):
    """config.json: the run's identity (what must match to reuse or resume it), and what
    ``experiments.runs.load_run`` rebuilds its model from."""
    FILE: typing.ClassVar[str] = CONFIG_FILE
    OPTIONAL: typing.ClassVar[frozenset] = frozenset({"model", "table", "thesis_row",
                                                      "runtime"})

    identity: dict | None = None
    stage: str | None = None
    family: str | None = None
    family_config: dict | None = None
    batch_size: int | None = None
    image_shape: list | None = None
    seed: int | None = None
    #: earlier stage name -> its run folder, relative to this one
    inputs: dict | None = None
    strategy: str | None = None
    num_replicas: int | None = None
    train_data: str | None = None
    train_examples: int | None = None
    val_data: str | None = None
    val_examples: int | None = None
    versions: dict | None = None
    #: how the steps ran: precision, jit (XLA), accumulate (``training.runtime.Runtime``)
    runtime: dict | None = None
    # a table row's run (its final stage) only:
    model: str | None = None
    table: str | None = None
    thesis_row: dict | None = None


@dataclasses.dataclass(eq=False)
class _TrainedMetrics(_Record):
    """What every metrics.json says about the training of its run or stage."""
    FILE: typing.ClassVar[str] = METRICS_FILE

    run: str | None = None
    family: str | None = None
    seed: int | None = None
    batch_size: int | None = None
    latent_size: int | None = None
    epochs: int | None = None
    steps: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    #: the history.csv columns the two losses come from
    train_loss_key: str | None = None
    val_loss_key: str | None = None
    train_seconds: float | None = None
    resumed_from_step: int | None = None


@dataclasses.dataclass(eq=False)
class RunMetrics(_TrainedMetrics):
    """metrics.json of a table row's run: training, then the scores of its samples."""
    OPTIONAL: typing.ClassVar[frozenset] = frozenset({"sampler", "stages", "resampled_from"})

    table: str | None = None
    model: str | None = None
    loss: str | None = None
    n_samples: int | None = None
    #: the network that scored the samples ("not computed" without one), its weights' digest
    metric_network: str | None = None
    metric_network_sha256: str | None = None
    fid: float | None = None
    is_: float | None = dataclasses.field(default=None, metadata={"key": "is"})
    is_split_std: float | None = None
    kid: float | None = None
    kid_subset_std: float | None = None
    precision: float | None = None
    recall: float | None = None
    sample_seconds: float | None = None
    #: the sampler settings the samples were drawn with (families that have some)
    sampler: dict | None = None
    #: earlier stage name -> {run (folder, relative), train_seconds, reconstruction_fid}
    stages: dict | None = None
    #: the sampler settings of the samples a resampling replaced
    resampled_from: dict | None = None


@dataclasses.dataclass(eq=False)
class StageMetrics(_TrainedMetrics):
    """metrics.json of a shared first stage (e.g. the diffusion autoencoder): training,
    the family's own figures of the stage (in ``extra``, e.g. ``recon_mse``) and, when
    scored, its reconstructions' scores."""
    OPTIONAL: typing.ClassVar[frozenset] = frozenset({"reconstruction_metrics"})

    stage: str | None = None
    reconstruction_metrics: dict | None = None


def metrics_record(data):
    """A metrics.json's parsed JSON as the record its content says it is: a first stage's
    (it names its ``stage``) or a table row's run's; NotARecord when not an object."""
    kind = StageMetrics if isinstance(data, dict) and "stage" in data else RunMetrics
    return kind.from_json(data)


def read_metrics(run_dir):
    """The metrics.json of ``run_dir`` as :func:`metrics_record`; errors as
    :meth:`RunMetrics.read`."""
    return metrics_record(files.read_json(RunMetrics.path(run_dir)))
