"""BasicSR-style evaluation: ``python test.py -opt options/test/test_EHAT-L_SRx4.yml``.

Shares its code with ``test_demo.py`` (ehat/evaluation); the options are validated by the same typed
machinery as training's (every key: docs/options.md).
"""

import sys

import ehat  # noqa: F401  (installs the torchvision alias basicsr needs, registers the networks)
from ehat.evaluation.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
