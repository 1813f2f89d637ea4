"""Datasets registered in basicsr's DATASET_REGISTRY, plus image reading and HR/LR pairing.

``MultiRootPairedDataset`` (training patches from several roots; ``ImageNetPairedDataset``, HAT's
name and keys for it; ``RealESRGANDataset``, basicsr's real-world dataset with HAT's keys) and ``PairedValidationDataset`` (whole
images with names). ``image_io`` and ``pairing`` are the helpers the rest of EHAT reads images with.
"""

from ehat.data import paired_dataset, realesrgan_dataset, validation_dataset  # noqa: F401  (registers the datasets)
from ehat.data.image_io import ImageReadError, read_image, read_image_uint8, write_image
from ehat.data.paired_dataset import ImageNetPairedDataset, MultiRootPairedDataset
from ehat.data.pairing import DatasetError, ImagePair, find_pairs
from ehat.data.validation_dataset import PairedValidationDataset

__all__ = [
    "DatasetError",
    "ImageNetPairedDataset",
    "ImagePair",
    "ImageReadError",
    "MultiRootPairedDataset",
    "PairedValidationDataset",
    "find_pairs",
    "read_image",
    "read_image_uint8",
    "write_image",
]
