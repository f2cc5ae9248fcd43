"""The thesis's tables as data: which runs each table holds, and what the thesis reported.

``experiments/paper/table_3_X.csv`` (the project's copy of the thesis tables)
defines both: each line is one row of the experiment grid (family, loss,
batch size, latent size) with the numbers thesis 004 printed beside it.
Rows a table adds beyond the thesis (``extra_rows``) run only when selected.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re

PAPER_DIR = os.path.join(os.path.dirname(__file__), "paper")


@dataclasses.dataclass(frozen=True)
class Row:
    """One cell of the experiment grid, with the thesis's reported values (None if absent)."""
    table: str
    family: str
    model: str
    loss: str
    batch_size: int
    latent_size: int
    thesis: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)
    in_thesis: bool = True

    @property
    def key(self) -> str:
        return f"{self.family}/{self.loss}@{self.latent_size}"


@dataclasses.dataclass(frozen=True)
class Table:
    """A thesis table: its id ("table_3_1"), a title and its rows."""
    name: str
    title: str
    rows: tuple

    def select(self, selectors) -> list:
        return [row for row in self.rows if any(s.matches(row) for s in selectors)
                and (row.in_thesis or any(s.names_loss(row) for s in selectors))]


def _number(text):
    return float(text) if text not in ("", None) else None


def load_rows(table: str, extra_rows=()) -> tuple:
    """Rows of ``paper/<table>.csv`` plus ``extra_rows`` ((family, model, loss, batch, latent))."""
    with open(os.path.join(PAPER_DIR, f"{table}.csv"), encoding="utf-8", newline="") as f:
        rows = [Row(table=table, family=r["family"], model=r["model"], loss=r["loss"],
                    batch_size=int(r["batch_size"]), latent_size=int(r["latent_size"]),
                    thesis={k: _number(r[k]) for k in ("fid", "is", "train_loss", "val_loss")})
                for r in csv.DictReader(f)]
    rows += [Row(table=table, family=fam, model=model, loss=loss, batch_size=batch,
                 latent_size=latent, thesis={}, in_thesis=False)
             for fam, model, loss, batch, latent in extra_rows]
    return tuple(rows)


class SelectorError(ValueError):
    pass


_SELECTOR = re.compile(r"^(?P<family>[a-z_0-9]+)(/(?P<loss>[a-z_0-9]+))?(@(?P<latent>[0-9]+))?$")


@dataclasses.dataclass(frozen=True)
class Selector:
    """``family[/loss][@latent]``, e.g. ``vae``, ``vae/wae``, ``vae/elbo@2048``."""
    family: str
    loss: str | None = None
    latent: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Selector":
        match = _SELECTOR.match(text.strip())
        if not match:
            raise SelectorError(
                f"bad selector {text!r}: write family[/loss][@latent], e.g. vae, vae/wae, "
                f"vae/elbo@2048")
        latent = match["latent"]
        return cls(match["family"], match["loss"], int(latent) if latent else None)

    def matches(self, row: Row) -> bool:
        return (row.family == self.family and self.loss in (None, row.loss)
                and self.latent in (None, row.latent_size))

    def names_loss(self, row: Row) -> bool:
        return self.matches(row) and self.loss == row.loss
