"""EHAT: HAT + Branch Self-Attention + DANet dual attention for x4 super-resolution.

Importing ``ehat`` installs the torchvision alias basicsr 1.4.2 needs, then registers our
architectures, datasets and models in basicsr's registries.
"""

from ehat._compat import install_torchvision_alias

install_torchvision_alias()

from ehat import archs, data  # noqa: E402,F401  (registers ARCH_REGISTRY / DATASET_REGISTRY entries)

__version__ = "0.1.0"
