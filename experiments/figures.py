"""Figures of a finished run for the reports (the thesis's appendix figures)."""
from __future__ import annotations

from common.figures import pyplot, save_figure
from common.files import image_grid, to_uint8


def write_samples_figure(path, generated, real, columns: int = 8, title: str = "",
                         label: str = "generated"):
    """Generated grid (or ``label``: e.g. "reconstructed") beside a grid of real images."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4))
    for ax, images, name in ((axes[0], generated, label), (axes[1], real, "real")):
        grid = image_grid(to_uint8(images), columns)
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid,
                  cmap="gray" if grid.shape[-1] == 1 else None, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    save_figure(plt, fig, path, title)
