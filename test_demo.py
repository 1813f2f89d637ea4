"""NTIRE 2024 Efficient SR evaluation, runnable on CUDA or CPU.

    python test_demo.py --data_dir ../ --save_dir ../results --model_id 35

See ``python test_demo.py --help``. A mistake in the arguments or files (an ``EhatError`` or an
``OSError``) prints one line and exits with status 2; no traceback (:func:`ehat.evaluation.ntire.main`).
"""

import sys

import ehat  # noqa: F401  (installs the torchvision alias basicsr needs, registers the networks)
from ehat.evaluation.ntire import main

if __name__ == "__main__":
    sys.exit(main())
