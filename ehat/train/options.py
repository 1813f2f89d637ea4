"""Transitional re-export: the options moved to :mod:`ehat.options` (train: :mod:`ehat.options.train`).

Kept only for the names the trainer modules still import from here; new code imports from
:mod:`ehat.options` directly. To be removed once the trainer imports the new modules.
"""

from ehat.options.common import GAN_MODEL_TYPES, REAL_MODEL_TYPES, options_device
from ehat.options.schema import OptionsError, to_plain
from ehat.options.train import TrainingOptions, experiments_root, load_options, validate_options

__all__ = [
    "GAN_MODEL_TYPES",
    "REAL_MODEL_TYPES",
    "OptionsError",
    "TrainingOptions",
    "experiments_root",
    "load_options",
    "options_device",
    "to_plain",
    "validate_options",
]
