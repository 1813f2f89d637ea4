"""The ``ehat`` command: one entry point for everything EHAT does.

    ehat upscale photo.png -o out/            # super-resolve your own images (no ground truth)
    ehat export 102 ehat_tiny.onnx            # ONNX, dynamic batch/height/width, verified
    ehat submission 35 --team_id 35 --out pkg # NTIRE ESR package (one torch-only file + weights)
    ehat eval --model_id 35 ...               # = python test_demo.py ...
    ehat train -opt options/train/x.yml       # = python train.py ...
    ehat convert in.pth out.safetensors       # = python scripts/convert_checkpoint.py ...
    ehat score results.json --year 2026       # the challenge's threshold check and scores of each row

MODEL is a model zoo id (``102``), a zoo name (``102_EHAT_tiny_demo``), a preset with zoo weights
(``ehat_tiny``) or a checkpoint file. A mistake of the user (an :class:`ehat.errors.EhatError` or
an ``OSError``) prints one ``ehat <command>: error: ...`` line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- forwarding commands


def _train(argv: Sequence[str]) -> int:
    from ehat.train.cli import main as train_main

    return train_main(list(argv))


def _eval(argv: Sequence[str]) -> int:
    from ehat.evaluation.ntire import main as eval_main

    return eval_main(list(argv))


def _convert(argv: Sequence[str]) -> int:
    from ehat.errors import EhatError

    script = REPO_ROOT / "scripts" / "convert_checkpoint.py"
    if not script.is_file():
        raise EhatError(
            f"ehat convert runs {script}, which this installation lacks: use a clone of the repository"
        )
    spec = importlib.util.spec_from_file_location("ehat_convert_checkpoint", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(list(argv))


FORWARDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "train": (_train, "train a network: the arguments of python train.py (-opt FILE ...)"),
    "eval": (_eval, "NTIRE ESR evaluation: the arguments of python test_demo.py (--model_id ...)"),
    "convert": (_convert, "convert a checkpoint: the arguments of scripts/convert_checkpoint.py"),
}


# --------------------------------------------------------------------------- own commands


def _export(args: argparse.Namespace) -> int:
    from ehat.export.models import resolve_model
    from ehat.export.onnx import export_onnx

    resolved = resolve_model(args.model)
    out = Path(args.output)
    if out.exists() and not args.force:
        print(f"ehat export: error: {out} exists (pass --force to overwrite)", file=sys.stderr)
        return 2
    precision = "fp16" if args.fp16 else "fp32"
    print(f"exporting {resolved.name} ({resolved.weights}) to ONNX, opset {args.opset}, {precision} ...")
    report = export_onnx(
        resolved.model, out, data_range=resolved.data_range, fp16=args.fp16, opset=args.opset
    )
    for line in report.lines():
        print(f"  verified {line}")
    print(
        f"wrote {out}: input 'lr' (batch, 3, height, width) float32 in [0, {resolved.data_range:g}], "
        f"output 'sr' x{resolved.scale}; any batch, height and width"
    )
    return 0


def _submission(args: argparse.Namespace) -> int:
    from ehat.export.models import resolve_model
    from ehat.export.submission import write_submission

    resolved = resolve_model(args.model)
    package = write_submission(
        resolved, args.out, team_id=args.team_id, name=args.name, force=args.force, year=args.year
    )
    print(package.summary())
    return 0


def _score(args: argparse.Namespace) -> int:
    import json

    from ehat.evaluation.score import ScoreError, challenge_year, results_score_lines

    year = challenge_year(args.year).year
    path = Path(args.results)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ScoreError(f"{path} is not a results.json (invalid JSON: {e})") from e
    if not isinstance(results, dict):
        raise ScoreError(f"{path} is not a results.json: its top level is not an object of rows")
    print("\n".join(results_score_lines(results, year, args.baseline, args.model)).rstrip())
    return 0


def _upscale(args: argparse.Namespace) -> int:
    from ehat.upscale import run_upscale

    return run_upscale(args)


def build_parser() -> argparse.ArgumentParser:
    """The ``ehat`` command line (forwarding commands take their own tool's arguments)."""
    from ehat.export.onnx import DEFAULT_OPSET

    p = argparse.ArgumentParser(
        "ehat",
        description="EHAT super-resolution: upscale images, export ONNX, build an NTIRE submission; "
        "train / eval / convert forward to train.py, test_demo.py and scripts/convert_checkpoint.py.",
        epilog="MODEL: a model zoo id (e.g. 102, the shipped demo; 35 EHAT-L), a zoo name, a preset with zoo "
        "weights (ehat_tiny) or a checkpoint file (.pth/.safetensors). Exit status 2: a mistake in the "
        "arguments or files, printed as one line.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from ehat.upscale import add_arguments as add_upscale_arguments

    up = sub.add_parser("upscale", help="super-resolve images and folders (no ground truth needed)")
    add_upscale_arguments(up)
    up.set_defaults(run=_upscale)

    ex = sub.add_parser("export", help="export MODEL to ONNX (dynamic batch/height/width), verified")
    ex.add_argument("model", metavar="MODEL")
    ex.add_argument("output", metavar="OUT.onnx")
    ex.add_argument("--fp16", action="store_true", help="float16 weights and compute (input/output float32)")
    ex.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, >= 17 (default {DEFAULT_OPSET})"
    )
    ex.add_argument("--force", action="store_true", help="overwrite OUT.onnx")
    ex.set_defaults(run=_export)

    sm = sub.add_parser("submission", help="write an NTIRE ESR package: models/teamXX_EHAT.py + model_zoo/")
    sm.add_argument("model", metavar="MODEL")
    sm.add_argument("--team_id", type=int, required=True, help="your team number (e.g. 35)")
    sm.add_argument("--out", required=True, help="folder to write models/ and model_zoo/ into")
    sm.add_argument("--name", default="EHAT", help="the model's name in the file names (default EHAT)")
    sm.add_argument("--force", action="store_true", help="overwrite existing package files")
    sm.add_argument("--year", type=int, choices=(2024, 2025, 2026), default=2024,
                    help="the challenge's test_demo.py to write for: its select_model branch form and file "
                         "names (default 2024)")  # fmt: skip
    sm.set_defaults(run=_submission)

    sc = sub.add_parser(
        "score", help="the NTIRE ESR threshold check and scores of the rows of a results.json"
    )
    sc.add_argument("results", metavar="RESULTS.json", nargs="?", default="results.json",
                    help="a results.json of test_demo.py (or the organizers'; default ./results.json)")  # fmt: skip
    sc.add_argument("--year", default="2024", help="the challenge's rules: 2024, 2025 or 2026 (default 2024)")
    sc.add_argument("--baseline", default=None, metavar="ROW",
                    help="the row to score against (default: each row's own same-run baseline measurement, "
                         "else the year's baseline row, e.g. 00_RLFN_baseline)")  # fmt: skip
    sc.add_argument(
        "--model", action="append", default=None, metavar="ROW", help="score only ROW (repeatable)"
    )
    sc.set_defaults(run=_score)

    for name, (_, help_text) in FORWARDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ehat`` command; returns the exit status (0 done, 2 a user's mistake)."""
    import ehat  # noqa: F401  (torchvision alias for basicsr, registries)
    from ehat.errors import EhatError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    if command == "upscale":  # before torch loads libgomp (ehat.cpu_inference)
        from ehat.cpu_inference import passive_omp_wait

        passive_omp_wait()
    try:
        if command in FORWARDS:
            return FORWARDS[command][0](argv[1:])
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (EhatError, OSError) as err:
        print(f"ehat {command}: error: {err}".replace("ehat : ", "ehat: "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ehat {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
