"""Write docs/options.md, the option reference of train.py and test.py, from the option classes.

python scripts/generate_option_docs.py            # rewrite docs/options.md
python scripts/generate_option_docs.py --check    # exit 1 when docs/options.md is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import ehat  # noqa: E402,F401  (torchvision alias for basicsr, registries)
from ehat.options.docs import render  # noqa: E402

TARGET = REPO / "docs" / "options.md"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when the file differs")
    p.add_argument("--out", type=Path, default=TARGET, help=f"output file (default: {TARGET})")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date: run python scripts/generate_option_docs.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
