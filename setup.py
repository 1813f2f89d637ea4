"""EHAT: HAT + Branch Self-Attention + DANet dual attention for x4 super-resolution."""

from setuptools import find_packages, setup

setup(
    name="ehat",
    version="0.1.0",
    description="EHAT: HAT with branch self-attention and dual attention for x4 image super-resolution",
    packages=find_packages(include=["ehat", "ehat.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "basicsr>=1.4.2",
        "fvcore",
        "lmdb",
        "numpy>=1.24",
        "opencv-python-headless",
        "pyyaml",
        "safetensors",
        "scikit-image",
        "tensorboard",
        "timm",
        "tqdm",
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout", "hypothesis", "ruff", "spandrel"],
        "export": ["onnx>=1.16", "onnxruntime>=1.17"],
    },
    entry_points={"console_scripts": ["ehat = ehat.cli:main"]},
)
