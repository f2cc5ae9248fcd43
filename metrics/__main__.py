"""Fetch or check the FID Inception weights.

    python -m metrics fetch [--cache-dir DIR]
        download the weights into the cache (verifying the recorded SHA-256)
    python -m metrics check [--inception-weights PATH] [--cache-dir DIR]
        load a weights file (or the cached one) into the Keras network: every tensor must
        map exactly once; prints the format, the digest and the number of tensors
"""
from __future__ import annotations

import argparse
import sys

from . import MetricsError, build_fid_inception, default_cache_dir, load_inception_weights
from .weights import WEIGHTS_FLAG, resolve_weights_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metrics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("fetch", "check"))
    parser.add_argument(WEIGHTS_FLAG, dest="inception_weights", default=None)
    parser.add_argument("--cache-dir", default=None, help=f"default: {default_cache_dir()}")
    args = parser.parse_args(argv)
    try:
        path = resolve_weights_file(args.inception_weights, args.cache_dir)
        print(f"weights: {path}")
        if args.command == "check":
            report = load_inception_weights(build_fid_inception(), path)
            print(f"format {report['format']}, sha256 {report['sha256']}, "
                  f"{report['assigned']} tensors mapped, ignored {len(report['ignored'])} "
                  "non-weight buffers")
    except MetricsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
