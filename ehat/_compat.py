"""Compatibility shims that must run before ``basicsr`` is imported.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, a module that
torchvision removed in 0.17; its one used function (``rgb_to_grayscale``) lives in
``torchvision.transforms.functional``. We alias the module so basicsr imports cleanly.
"""

import sys


def install_torchvision_alias() -> None:
    """Make ``torchvision.transforms.functional_tensor`` importable (idempotent)."""
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (old torchvision)
    except ImportError:
        import torchvision.transforms.functional as functional

        sys.modules[name] = functional
