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


def _register_with_basicsr() -> None:
    """Fill basicsr's registries with EHAT's networks and datasets (once basicsr is loaded)."""
    import ehat.data  # noqa: F401  (its modules register their datasets in DATASET_REGISTRY)
    from ehat.archs import register_basicsr_archs

    register_basicsr_archs()


class _BasicsrHook:
    """A ``sys.meta_path`` finder that runs around the first ``import basicsr``: the torchvision alias
    before it, EHAT's registry entries after it. ``import ehat`` (and ``import ehat.archs``) thus
    loads neither basicsr nor torchvision, and BasicSR code always finds EHAT's classes."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        if fullname != "basicsr":
            return None
        import importlib.util

        sys.meta_path.remove(self)  # find the real package, once
        spec = importlib.util.find_spec("basicsr")
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: object) -> None:
            install_torchvision_alias()
            run(module)
            _register_with_basicsr()

        spec.loader.exec_module = exec_module  # this spec's loader instance only
        return spec


def install_basicsr_hook() -> None:
    """Register EHAT with basicsr when basicsr is imported (now, if it already is). Idempotent."""
    if "basicsr" in sys.modules:
        install_torchvision_alias()
        _register_with_basicsr()
    elif not any(isinstance(f, _BasicsrHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _BasicsrHook())
