"""The typed options of ``train.py`` and ``test.py`` (BasicSR's YAML format), one concern per module.

- :mod:`~ehat.options.schema`: the machinery (``option`` / ``section`` fields, one validator ``build``,
  :class:`~ehat.options.schema.OptionsError`);
- :mod:`~ehat.options.converters`: every value converter (ints, paths, probabilities, ranges...);
- :mod:`~ehat.options.registries`, :mod:`~ehat.options.network`, :mod:`~ehat.options.components`:
  ``{type: Name, ...}`` options checked against a registry and Name's constructor (``network_g``,
  optimizers, schedulers, losses, metrics);
- :mod:`~ehat.options.losses`: the loss slots of ``train``, declared once (:data:`LOSS_SLOTS`);
- :mod:`~ehat.options.common`: what train and test share (model types, weights, device);
- :mod:`~ehat.options.datasets`, :mod:`~ehat.options.degradations`: ``datasets.*`` and the
  real-world keys;
- :mod:`~ehat.options.train` (:func:`~ehat.options.train.load_options`),
  :mod:`~ehat.options.benchmark` (``test.py``: :func:`~ehat.options.benchmark.load_test_options`),
  :mod:`~ehat.options.distill`: the whole files;
- :mod:`~ehat.options.yaml_files`, :mod:`~ehat.options.paths`, :mod:`~ehat.options.online`: reading
  the file, the files it names, the one network check;
- :mod:`~ehat.options.docs`: ``docs/options.md``, rendered from the field specs.

The package sits above :mod:`ehat.archs` / :mod:`ehat.checkpoints` / :mod:`ehat.data` and below
:mod:`ehat.train` and :mod:`ehat.evaluation` (``tests/test_layering.py``). This file imports nothing,
so importing one module does not import them all.
"""
