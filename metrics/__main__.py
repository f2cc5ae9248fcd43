"""Image-generation metrics from the command line.

    python -m metrics fid A B [--network auto|inception|evaluator] [--evaluator KEY|DIR]
            [--inception-weights PATH] [--seed 0] [--json] [--quiet]
        FID (fd_eval with the suite's evaluator), KID, precision/recall and, where the
        network has class logits, IS (is_eval) between two sets of images. A and B are each
        a folder of images (.png .jpg .jpeg .bmp .webp, subfolders too, every image used),
        an .npz of uint8 images (key 'images'; NHWC, or NHW for gray) or statistics saved
        with --save-stats. Names the network and its weights' SHA-256, the image counts and
        how each set was converted for the network (sizes, channels). A plays the part of
        the generated images, B that of the reference: `fid RUN/samples.npz train.npz`
        gives what `score` gives the run.
    python -m metrics fid A --save-stats OUT.npz [...]
        write the statistics of one set (mean, covariance, the features KID and
        precision/recall need, the network's identity) for later comparisons; statistics
        are only ever compared with images or statistics of the same network
    python -m metrics score RUN_DIR [--samples FILE.npz|FOLDER] [--data-dir DIR] [--rtol 1e-4]
        score a finished run's samples.npz again exactly as the runner did (same network,
        refused if its weights' SHA-256 differs, same reference images, sample count and
        seed) and print the numbers beside its metrics.json. With --samples, score those
        images under the run's protocol instead
    python -m metrics fetch [--cache-dir DIR]
        download the Inception weights into the cache (verifying the recorded SHA-256)
    python -m metrics check [--inception-weights PATH] [--cache-dir DIR]
        load a weights file (or the cached one) into the Keras network: every tensor must
        map exactly once; prints the format, the digest and the number of tensors
    python -m metrics train-evaluator --dataset NAME --out DIR [--image-size 32]
            [--channels 1|3] [--data-dir DIR] [--config JSON] [--quiet]
        train the evaluator in this (fresh) process with a pinned runtime (see
        metrics/evaluator.py) and save weights.weights.h5 + info.json into DIR
    python -m metrics train-evaluator2 --dataset NAME --out DIR [--image-size 32]
            [--channels 1|3] [--data-dir DIR] [--config JSON] [--quiet]
        train the second evaluator (metrics/contrastive.py: residual network, contrastive
        objective, no labels) the same pinned way
    python -m metrics calibrate --out FILE.csv [--n 2000] [--seed 0] [--data-dir DIR]
        calibration rows: real test images clean, blurred, noisy, with 4x4 block offsets,
        pixelated, scored by both evaluators (metrics/calibration.py)
    python -m metrics second-opinion RUNS_DIR --out FILE.csv [--data-dir DIR]
        every scored run's samples by the second evaluator beside fd_eval, with Spearman's
        rank correlation and the pairs the two order differently (metrics/second_opinion.py)

Each command has its own --help (python -m metrics fid --help).
"""
from __future__ import annotations

import os

# Before anything imports TensorFlow: its native (C++) log lines, such as "failed call to
# cuInit" on a machine without a GPU, would precede every message on stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# This package imports no TensorFlow (metrics/__init__.py is lazy): the arguments are parsed
# and the inputs checked first, so --help and bad input answer at once.
from .errors import MetricsError  # noqa: E402

EXIT_OK, EXIT_DIFFERS, EXIT_BAD_INPUT = 0, 1, 2
WEIGHTS_FLAG = "--inception-weights"  # = metrics.weights.WEIGHTS_FLAG (that module loads TF)
EXIT_CODES = """\
exit status:
  0  done (score: every metric equals the recorded one to --rtol)
  1  score: a metric differs from the run's metrics.json beyond --rtol
     (an unexpected failure also exits 1, with a Python traceback)
  2  bad input: one line on stderr naming the problem and the fix, found before anything
     is scored (bad options, missing, empty or unreadable files, images the network
     cannot convert, statistics of another network, an unwritable cache or output)
"""


def _default_cache_dir() -> Path:
    """= metrics.weights.default_cache_dir(), without importing TensorFlow."""
    return Path(os.environ.get("GENBENCH_CACHE") or Path.home() / ".cache" / "genbench")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr, exit 2 (argparse prints the usage first)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_BAD_INPUT)


def _rtol(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number >= 0 (a relative "
                                         f"tolerance, e.g. 1e-4)")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="python -m metrics", description=__doc__, epilog=EXIT_CODES,
                     formatter_class=formatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     title="commands (each has its own --help)")

    def cache(p):
        p.add_argument("--cache-dir", default=None,
                       help="weights, evaluators and reference statistics (default: "
                            "$GENBENCH_CACHE, else ~/.cache/genbench)")

    def weights(p, what):
        p.add_argument(WEIGHTS_FLAG, dest="inception_weights", default=None, metavar="PATH",
                       help=what)

    fid = commands.add_parser(
        "fid", formatter_class=formatter, epilog=EXIT_CODES,
        help="FID/fd_eval, KID, precision/recall, IS between two sets of images",
        description="FID (fd_eval with the suite's evaluator), KID, precision/recall and, "
                    "where the network has class logits, IS between two sets of images, or "
                    "the statistics of one set (--save-stats).\n\n"
                    "A set is a folder of images (.png .jpg .jpeg .bmp .webp, subfolders "
                    "too; every image is used, there is no held-out split), an .npz of "
                    "uint8 images (key 'images'; [N, H, W, C] with C 1 or 3, or [N, H, W] "
                    "for gray; pickles refused) or statistics written by --save-stats.\n"
                    "Images are converted as the network needs, and the output says how: "
                    "Inception repeats gray to RGB and resizes to 299x299; the evaluator "
                    "resizes to its own size and converts RGB and gray. A is taken as the "
                    "generated set, B as the reference (precision: share of A inside B's "
                    "manifold).")
    fid.add_argument("a", metavar="A", help="folder of images, .npz of images, or statistics")
    fid.add_argument("b", metavar="B", nargs="?",
                     help="the other set (leave it out with --save-stats)")
    fid.add_argument("--network", "--metrics", dest="network", default="auto",
                     choices=("auto", "inception", "evaluator"),
                     help="auto (default): the Inception when its weights are at hand "
                          f"({WEIGHTS_FLAG}, or in the cache), else the suite's evaluator; "
                          "with statistics, the network that computed them")
    fid.add_argument("--evaluator", default=None, metavar="KEY|DIR",
                     help="the evaluator: a name under metrics/evaluators/ (e.g. "
                          "fashion_mnist-32x32x1) or a folder holding one (default: the "
                          "repository's evaluator closest to A's image shape)")
    weights(fid, "the Inception weights file (pt_inception-2015-12-05-*.pth or "
                 "inception-2015-12-05.tgz)")
    cache(fid)
    fid.add_argument("--seed", type=_seed, default=0, help="KID's subset draws (default 0)")
    fid.add_argument("--save-stats", default=None, metavar="OUT.npz",
                     help="write the statistics of the one set A into OUT.npz")
    fid.add_argument("--json", action="store_true", help="print the result as JSON")
    fid.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    score = commands.add_parser(
        "score", formatter_class=formatter, epilog=EXIT_CODES,
        help="score a finished run's samples again, beside its metrics.json",
        description="Score a finished run's samples.npz again exactly as the runner did "
                    "(the network it names, refused if its weights' SHA-256 differs; the same "
                    "reference images, sample count and KID seed) and print the numbers "
                    "beside its metrics.json. With --samples, score other images under the "
                    "run's protocol (nothing is expected to match then).")
    score.add_argument("run_dir", metavar="RUN_DIR", help="a finished run's folder")
    score.add_argument("--samples", default=None, metavar="FILE.npz|FOLDER",
                       help="uint8 images (an .npz, key 'images', or a folder of images) to "
                            "score instead of RUN_DIR/samples.npz")
    score.add_argument("--rtol", type=_rtol, default=1e-4,
                       help="the relative difference that counts as a mismatch (default 1e-4)")
    score.add_argument("--data-dir", default=None, help="where the dataset's files are")
    weights(score, "the Inception weights file, for runs scored by the Inception")
    cache(score)
    score.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    fetch = commands.add_parser("fetch", help="download the Inception weights into the cache",
                                epilog=EXIT_CODES, formatter_class=formatter)
    cache(fetch)
    check = commands.add_parser("check", help="load an Inception weights file and check it",
                                epilog=EXIT_CODES, formatter_class=formatter)
    weights(check, "the weights file (default: the cached one)")
    cache(check)

    train = commands.add_parser("train-evaluator", help="train the suite's evaluator",
                                epilog=EXIT_CODES, formatter_class=formatter)
    train.add_argument("--dataset", required=True, help="the dataset to train on")
    train.add_argument("--out", required=True, help="the folder to save it in")
    train.add_argument("--image-size", type=int, default=32)
    train.add_argument("--channels", type=int, default=3, choices=[1, 3])
    train.add_argument("--data-dir", default=None)
    train.add_argument("--config", default=None, help="EvaluatorConfig fields as JSON")
    train.add_argument("--quiet", action="store_true")

    train2 = commands.add_parser(
        "train-evaluator2", epilog=EXIT_CODES, formatter_class=formatter,
        help="train the second evaluator (a residual network, contrastive, no labels)",
        description="Train the second evaluator (metrics/contrastive.py: a pre-activation "
                    "residual network with GroupNorm trained with SimCLR's NT-Xent loss, no "
                    "labels) in this fresh process with the pinned runtime, and save "
                    "weights.weights.h5 + info.json into DIR.")
    train2.add_argument("--dataset", required=True, help="the dataset to train on")
    train2.add_argument("--out", required=True, help="the folder to save it in")
    train2.add_argument("--image-size", type=int, default=32)
    train2.add_argument("--channels", type=int, default=1, choices=[1, 3])
    train2.add_argument("--data-dir", default=None)
    train2.add_argument("--config", default=None, help="ContrastiveConfig fields as JSON")
    train2.add_argument("--quiet", action="store_true")

    calibrate = commands.add_parser(
        "calibrate", epilog=EXIT_CODES, formatter_class=formatter,
        help="score real test images degraded in known ways with both evaluators",
        description="Calibration rows (metrics/calibration.py): N real held-out (test) "
                    "images, clean and degraded in known ways (blur, pixel noise, 4x4 block "
                    "offsets, pixelation), each scored against the train split by both "
                    "evaluators (fd_eval, KID, precision/recall, is_eval; fd_eval2, kid_eval2, "
                    "precision/recall in the second evaluator's features); a CSV with one "
                    "row per set.")
    calibrate.add_argument("--out", required=True, metavar="FILE.csv", help="the CSV to write")
    calibrate.add_argument("--n", type=int, default=2000, help="images per set (default 2000)")
    calibrate.add_argument("--seed", type=_seed, default=0,
                           help="which test images and the degradations' noise (default 0)")
    calibrate.add_argument("--dataset", default="fashion_mnist")
    calibrate.add_argument("--data-dir", default=None, help="where the dataset's files are")
    cache(calibrate)
    calibrate.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    opinion = commands.add_parser(
        "second-opinion", epilog=EXIT_CODES, formatter_class=formatter,
        help="score every run's samples with the second evaluator; rank agreement",
        description="Score every scored run under RUNS_DIR (RUNS_DIR/*/samples.npz with a "
                    "metrics.json) with the second evaluator, write a CSV (run, fd_eval from "
                    "its metrics.json, fd_eval2, kid_eval2, ...) and print Spearman's rank "
                    "correlation of fd_eval and fd_eval2. Writes nothing into the runs.")
    opinion.add_argument("runs_dir", metavar="RUNS_DIR", help="a results folder's runs/")
    opinion.add_argument("--out", required=True, metavar="FILE.csv", help="the CSV to write")
    opinion.add_argument("--data-dir", default=None, help="where the dataset's files are")
    cache(opinion)
    opinion.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _one_line(err: Exception) -> str:
    """A message on one line (some carry lists of URLs on lines of their own)."""
    return "; ".join(part.strip() for part in str(err).splitlines() if part.strip())


def _train_evaluator(args) -> None:
    from .evaluator import EvaluatorConfig, pin_runtime, save_evaluator, train_evaluator

    runtime = pin_runtime()  # first, before any op
    from data import DatasetError, open_dataset
    from common.config import ConfigError, from_dict

    try:
        config = from_dict(EvaluatorConfig, json.loads(args.config or "{}"), where="--config")
        sources = [open_dataset(args.dataset, split, image_size=args.image_size,
                                channels=args.channels, data_dir=args.data_dir)
                   for split in ("train", "validation" if args.dataset == "celeb_a" else "test")]
    except (DatasetError, ConfigError, ValueError) as err:
        raise MetricsError(str(err)) from err
    model, info = train_evaluator(*sources, config, verbose=not args.quiet)
    info = save_evaluator(model, {**info, "runtime": runtime}, args.out)
    print(f"[metrics] evaluator saved in {args.out} (test accuracy {info['test_accuracy']:.4f}, "
          f"sha256 {info['weights_sha256']})", file=sys.stderr, flush=True)


def _writable_cache(cache_dir) -> Path:
    from common.files import writable_dir_problem

    folder = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
    problem = writable_dir_problem(folder)
    if problem:
        flag = f"--cache-dir {cache_dir}" if cache_dir else f"the cache {folder}"
        raise MetricsError(f"{flag}: {problem}; the reference statistics are written there: "
                           f"pass a writable --cache-dir DIR (or set GENBENCH_CACHE)")
    return folder


def _score(args) -> int:
    from .rescore import comparison_table, differences, load_run, score_run

    cache_dir = _writable_cache(args.cache_dir)
    loaded = load_run(args.run_dir, args.samples)  # every input checked; no TensorFlow yet
    recorded, new = score_run(loaded, data_dir=args.data_dir,
                              inception_weights=args.inception_weights,
                              cache_dir=cache_dir, progress=not args.quiet)
    what = args.samples or f"{args.run_dir}/samples.npz"
    print(f"[metrics] {what}: {new['n_samples']} images scored by {new['metric_network']}")
    print(comparison_table(recorded, new))
    if args.samples:  # other images: nothing is expected to match
        return EXIT_OK
    differ = differences(recorded, new, args.rtol)
    if differ:
        print(f"[metrics] differs from the recorded metrics.json beyond rtol {args.rtol}: "
              f"{', '.join(differ)}")
        return EXIT_DIFFERS
    print(f"[metrics] every metric equals the recorded one to rtol {args.rtol}")
    return EXIT_OK


def _fid(args) -> int:
    from .imagesets import compare_sets, print_result

    result = compare_sets(args.a, args.b, network=args.network, evaluator=args.evaluator,
                          inception_weights=args.inception_weights, cache_dir=args.cache_dir,
                          seed=args.seed, save_stats=args.save_stats, progress=not args.quiet)
    print_result(result, args.json)
    return EXIT_OK


def _weights(args) -> int:
    from . import build_fid_inception, load_inception_weights
    from .weights import resolve_weights_file

    path = resolve_weights_file(getattr(args, "inception_weights", None), args.cache_dir)
    print(f"weights: {path}")
    if args.command == "check":
        report = load_inception_weights(build_fid_inception(), path)
        print(f"format {report['format']}, sha256 {report['sha256']}, "
              f"{report['assigned']} tensors mapped, ignored {len(report['ignored'])} "
              "non-weight buffers")
    return EXIT_OK


def _train_evaluator2(args) -> None:
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # before TensorFlow loads: part of the pin
    from .contrastive import train_command

    train_command(args)


def _calibrate(args) -> int:
    from .calibration import calibrate_command

    return calibrate_command(args)


def _second_opinion(args) -> int:
    from .second_opinion import second_opinion_command

    return second_opinion_command(args)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run = {"fid": _fid, "score": _score, "train-evaluator": _train_evaluator,
           "train-evaluator2": _train_evaluator2, "calibrate": _calibrate,
           "second-opinion": _second_opinion,
           "fetch": _weights, "check": _weights}[args.command]
    try:
        code = run(args)
    except MetricsError as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK if code is None else code


if __name__ == "__main__":
    sys.exit(main())
