"""Evaluation: the NTIRE protocol (``test_demo.py``) and the pieces it is made of, one concern each.

- :mod:`~ehat.evaluation.ntire`: the ``test_demo.py`` command line and its steps;
- :mod:`~ehat.evaluation.sets`: the challenge's sets / ``--lr_dir`` ``--hr_dir`` pairs, their images;
- :mod:`~ehat.evaluation.protocol`: the evaluation's options and one set's per-image loop;
- :mod:`~ehat.evaluation.inference`: tensor <-> uint8, the timed forward, the out-of-memory retry;
- :mod:`~ehat.imaging.tiling`: tiled forward and the tile policy (whole / fixed N / auto);
- :mod:`~ehat.evaluation.memory_model` / :mod:`~ehat.evaluation.memory`: ``--tile auto``'s memory fit;
- :mod:`~ehat.imaging.metrics`, :mod:`~ehat.evaluation.runtime`, :mod:`~ehat.evaluation.complexity`:
  what is measured; :mod:`~ehat.evaluation.ensemble`: self-ensemble x8;
- :mod:`~ehat.evaluation.reporting`: CSV, summaries, ``results.json`` / ``results.txt``, the log;
- :mod:`~ehat.imaging.visualize`: MATLAB bicubic | SR | HR pictures;
- :mod:`~ehat.evaluation.errors`: :class:`~ehat.evaluation.errors.EvalError` (an ``EhatError``).
"""
