"""Train EHAT: ``python train.py -opt options/train/<name>.yml [--auto_resume]``.

Several GPUs: ``torchrun --nproc_per_node=N train.py -opt <file> --launcher pytorch``.
Every option key, its type, default and meaning: docs/options.md.
"""

import ehat  # noqa: F401  (must come before basicsr)
from ehat.train.cli import entry

if __name__ == "__main__":
    entry()
