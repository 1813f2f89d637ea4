"""Images and image tensors, shared by training validation, evaluation (``test.py``, ``test_demo.py``)
and ``ehat upscale``: one layer below :mod:`ehat.train` and :mod:`ehat.evaluation`, so neither
imports the other.

- :mod:`~ehat.imaging.convert`: tensor <-> uint8 image;
- :mod:`~ehat.imaging.metrics`: PSNR (RGB), PSNR-Y, SSIM-Y, SSIM on uint8 images;
- :mod:`~ehat.imaging.tiling`: tiled forward with blended seams, and the tile policy;
- :mod:`~ehat.imaging.visualize`: MATLAB bicubic | SR | HR pictures.
"""
