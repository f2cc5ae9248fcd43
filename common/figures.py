"""matplotlib for files only: the Agg backend and atomic PNG writes of a figure."""
from __future__ import annotations

from common.files import atomic_path


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on servers and CI)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(plt, fig, path, title: str = ""):
    """Write ``fig`` to ``path`` as PNG, atomically, and close it."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
