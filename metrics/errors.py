"""The one exception type the metrics package raises for problems a user can fix."""
from __future__ import annotations


class MetricsError(RuntimeError):
    """Missing or corrupt weights, refused files, unusable inputs."""
