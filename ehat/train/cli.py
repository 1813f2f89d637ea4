"""``python train.py -opt options/train/<name>.yml [--auto_resume] [--launcher pytorch|slurm] [--force_yml k:k=v]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ehat.errors import EhatError


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train EHAT/HAT from a BasicSR-style YAML option file (reference: docs/options.md).",
        epilog="Multi-GPU: torchrun --nproc_per_node=N train.py -opt <file> --launcher pytorch",
    )
    p.add_argument("-opt", "--opt", required=True, help="path to the YAML option file")
    p.add_argument(
        "--launcher", choices=("none", "pytorch", "slurm"), default="none", help="distributed launcher"
    )
    p.add_argument(
        "--auto_resume", action="store_true", help="resume from the newest state in the experiment folder"
    )
    p.add_argument(
        "--force_yml",
        nargs="+",
        default=[],
        metavar="KEY:SUBKEY=VALUE",
        help="override option-file keys (BasicSR's), e.g. train:total_iter=10 path:resume_state=~",
    )
    p.add_argument(
        "--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS
    )  # torch.distributed.launch
    return p.parse_args(argv)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a user's mistake or machine causes, printed as one line without a traceback:
    :class:`~ehat.errors.EhatError` and ``OSError`` (never ``ValueError`` as a whole)."""
    return (EhatError, OSError)


def entry(argv: Sequence[str] | None = None) -> None:
    """:func:`main` then exit with its code (``train.py``; a child process target in tests)."""
    sys.exit(main(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Run training; returns the process exit code (0 done, 1 error, 128+signal when interrupted)."""
    # deliberately lazy: `ehat train --help` and train.py's argument errors answer before torch loads
    import ehat  # noqa: F401  (torchvision alias for basicsr, registries)
    from ehat.options.train import load_options
    from ehat.train import distributed as du
    from ehat.train.real_trainer import trainer_class
    from ehat.train.trainer import TrainingInterrupted

    args = parse_args(argv)
    try:
        opt = load_options(args.opt, force_yml=args.force_yml, launcher=args.launcher)
        trainer_class(opt)(opt, launcher=args.launcher, auto_resume=args.auto_resume).run()
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        return 128 + exc.signum
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        du.cleanup()
    return 0
