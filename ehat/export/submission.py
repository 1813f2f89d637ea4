"""NTIRE Efficient-SR submission package: one torch-only model file generated from our code.

The organizers' ``test_demo.py`` imports ``models/teamXX_Name.py`` and loads a weights file from
``model_zoo/`` with ``strict=True`` inside a ``select_model`` branch. This module writes both for
any registered network (the modules its descriptor lists in ``source_modules``), for the harness
of NTIRE 2024, 2025 or 2026 (``year``; see :data:`YEARS`):

* ``models/team35_EHAT.py`` is *generated from our network code*: the source of the modules the
  network needs (attention, padding, HAT, and for EHAT the branch weights, dual attention and
  bicubic skip; or RLFN), read with :mod:`ast`, with the imports of ``ehat``, ``basicsr`` and
  ``timm`` removed (HAT's ``DropPath`` / ``trunc_normal_`` are its own, in ``hat_arch.py``; a
  stand-in ``EhatError`` replaces ours) and the registry decorators dropped. At its end a class
  ``Team35EHAT`` takes no arguments and builds the checkpoint's config. The same code runs, so the
  output equals ours bit for bit;
* ``model_zoo/team35_ehat.pth`` (2024) or ``model_zoo/team35_EHAT.pth`` (2025, 2026): the network's
  plain state dict, in that file's key layout (ours);
* ``select_model.txt``: the branch to paste into that year's ``select_model``.

The three years' ``test_demo.py`` share the contract (a branch sets ``name``, ``data_range`` (1.0
or 255.0, the network's) and ``model``; images go in as ``uint8 / (255 / data_range)``) and the
measurement code; they differ in file naming and branch form: 2024 lower-cases the weights name
(``team00_rlfn.pth``), 2025 and 2026 keep the model name's case (``team00_EFDN.pth``,
``team00_SPAN.pth``), and 2026's baseline branch builds ``.eval().to(device)`` and loads through a
``stat_dict`` with ``strict=False``; ours keeps ``strict=True`` (every key must fit).

Before anything is written the generated file is executed apart from ``ehat`` and compared with
the network on a random input; a difference is refused (:class:`SubmissionError`).
"""

from __future__ import annotations

import ast
import inspect
import io
import pprint
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ehat.atomic import atomic_write, atomic_write_bytes
from ehat.errors import EhatError

__all__ = ["Submission", "SubmissionError", "generate_model_source", "write_submission"]

# Imports the generated file must not keep: everything it needs from them is inlined.
FOREIGN_MODULES = ("ehat", "basicsr", "timm")

STANDINS = '''
class EhatError(Exception):
    """Stand-in for ehat.errors.EhatError (a user's configuration mistake)."""

'''


class SubmissionError(EhatError):
    """A package that cannot be written as asked (existing files, a failed self-check)."""


def _modules_for(model: nn.Module) -> list[types.ModuleType]:
    """Our modules that define ``model``'s network, in dependency order (its descriptor's
    ``source_modules``)."""
    import importlib

    from ehat.archs import descriptor_of
    from ehat.archs.presets import UnknownNetworkError

    try:
        names = descriptor_of(model).source_modules
    except UnknownNetworkError as err:
        raise SubmissionError(f"no submission generator for {type(model).__name__}: {err}") from None
    if not names:
        raise SubmissionError(
            f"no submission generator for {type(model).__name__}: its descriptor names no source_modules"
        )
    return [importlib.import_module(name) for name in names]


def _is_foreign_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "__future__" or (node.module or "").split(".")[0] in FOREIGN_MODULES
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] in FOREIGN_MODULES for a in node.names)
    return False


def _descriptor_names(tree: ast.Module) -> set[str]:
    """Names a module imports from :mod:`ehat.archs.descriptor` (its registration, not its network)."""
    return {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "ehat.archs.descriptor"
        for alias in node.names
    }


def _kept_source(module: types.ModuleType) -> str:
    """``module``'s top-level statements, minus foreign imports, ``__all__``, state-dict readers and
    its network descriptor (every statement using a name imported from ``ehat.archs.descriptor``)."""
    source = inspect.getsource(module)
    tree = ast.parse(source)
    descriptor_api = _descriptor_names(tree)
    parts = []
    for node in tree.body:
        if _is_foreign_import(node):
            continue
        if isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant):
            continue  # the module docstring
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            continue
        if isinstance(node, ast.FunctionDef) and node.name.endswith("_from_state_dict"):
            continue  # checkpoint readers; the package loads a plain dict
        if any(isinstance(n, ast.Name) and n.id in descriptor_api for n in ast.walk(node)):
            continue  # the descriptor and its registration: EHAT's bookkeeping, not the network
        text = ast.get_source_segment(source, node)
        parts.append(text)  # class/def segments start at the keyword: registry decorators are dropped
    return f"# ---- from {module.__name__} ----\n" + "\n\n\n".join(parts)


def _config_of(model: nn.Module) -> dict[str, Any]:
    from ehat.checkpoints import arch_config_of

    cfg = dict(arch_config_of(model))
    cfg.pop("type", None)
    if "drop_path_rate" in inspect.signature(type(model).__init__).parameters or hasattr(model, "depths"):
        cfg["drop_path_rate"] = 0.0  # inference only: no stochastic depth modules
    return cfg


YEARS = (2024, 2025, 2026)
"""The NTIRE Efficient-SR harnesses a package can be written for."""


def weights_name(team_id: int, name: str, year: int = 2024) -> str:
    """``team35_ehat.pth`` (2024's lower-case names) or ``team35_EHAT.pth`` (2025, 2026)."""
    return f"team{team_id:02d}_{name.lower() if year == 2024 else name}.pth"


def class_name(team_id: int, name: str) -> str:
    """``Team35EHAT``: the no-argument class the package's select_model branch builds."""
    return f"Team{team_id:02d}{name}"


def generate_model_source(model: nn.Module, team_id: int, name: str = "EHAT", year: int = 2024) -> str:
    """The text of ``models/teamXX_<name>.py`` for ``model`` and ``year``'s harness (see the module
    docstring; only the header differs between years)."""
    from ehat import __version__

    cfg = _config_of(model)
    base = type(model).__name__
    body = "\n\n\n".join(_kept_source(m) for m in _modules_for(model))
    cls = class_name(team_id, name)
    config = pprint.pformat(cfg, sort_dicts=False, width=100)
    header = f'''"""Team {team_id:02d}: {name} ({base}) for the NTIRE {year} Efficient SR test_demo.py, x{cfg.get("upscale", 4)}.

Generated by ``ehat submission`` (EHAT {__version__}) from EHAT's network code; needs only torch.
Build with ``{cls}()`` and load ``model_zoo/{weights_name(team_id, name, year)}`` with strict=True.
Input (B, 3, H, W) in [0, {_data_range(model):g}], any H, W; output (B, 3, H*scale, W*scale).
"""

from __future__ import annotations

import torch
from torch import nn
'''
    footer = f'''

# ---- the submitted network ----

CONFIG = {config}


class {cls}({base}):
    """{base} with the submitted configuration (no arguments)."""

    def __init__(self) -> None:
        super().__init__(**CONFIG)
'''
    return header + STANDINS + "\n\n" + body + "\n" + footer


def _data_range(model: nn.Module) -> float:
    from ehat.archs import descriptor_of

    return descriptor_of(model).data_range


def load_generated(source: str, module_name: str = "ehat_generated_submission") -> types.ModuleType:
    """Execute a generated model file as a module (it imports only torch)."""
    module = types.ModuleType(module_name)
    module.__file__ = f"<{module_name}>"
    import sys

    sys.modules[module_name] = module  # dataclass / typing helpers look the module up
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    finally:
        sys.modules.pop(module_name, None)
    return module


def _self_check(
    source: str, model: nn.Module, state: dict[str, torch.Tensor], cls: str, data_range: float
) -> None:
    tree = ast.parse(source)
    foreign = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and _is_foreign_import(n) and getattr(n, "module", "") != "__future__"]  # fmt: skip
    if foreign:
        raise SubmissionError(
            f"the generated file still imports {foreign}: it would not run with torch alone"
        )
    generated = getattr(load_generated(source), cls)().eval()
    generated.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 13, 19, generator=torch.Generator().manual_seed(0)) * data_range
    with torch.no_grad():
        if not torch.equal(generated(x), model(x)):
            raise SubmissionError(
                "the generated model file does not reproduce the network bit for bit; nothing was written"
            )


@dataclass
class Submission:
    """What :func:`write_submission` wrote."""

    model_file: Path
    weights_file: Path
    snippet_file: Path
    snippet: str

    def summary(self) -> str:
        return (
            f"wrote {self.model_file}\nwrote {self.weights_file}\nwrote {self.snippet_file}; paste into the "
            f"organizers' select_model (test_demo.py):\n{self.snippet}"
        )


def select_model_branch(team_id: int, name: str, data_range: float, year: int = 2024) -> str:
    """The ``elif model_id == XX:`` branch for ``year``'s ``select_model`` (in its form, see the
    module docstring); it sets ``name``, ``data_range`` and ``model`` (strict load)."""
    cls = class_name(team_id, name)
    head = (
        f"    elif model_id == {team_id}:\n"
        f"        from models.team{team_id:02d}_{name} import {cls}\n"
        f'        name, data_range = f"{{model_id:02}}_{name}", {data_range:.1f}\n'
    )
    path = f"        model_path = os.path.join('model_zoo', '{weights_name(team_id, name, year)}')\n"
    if year == 2026:
        return (
            head
            + f"        model = {cls}().eval().to(device)\n"
            + path
            + "        stat_dict = torch.load(model_path, map_location=device)\n"
            + "        model.load_state_dict(stat_dict, strict=True)\n"
        )
    return (
        head
        + path
        + f"        model = {cls}()\n"
        + "        model.load_state_dict(torch.load(model_path), strict=True)\n"
    )


def write_submission(
    resolved: Any, out: str | Path, team_id: int, name: str = "EHAT", force: bool = False, year: int = 2024
) -> Submission:
    """Write ``year``'s package for ``resolved`` (:class:`ehat.export.models.ResolvedModel`) under ``out``."""
    if year not in YEARS:
        raise SubmissionError(f"--year {year}: the harnesses known are {', '.join(map(str, YEARS))}")
    if not name.isidentifier():
        raise SubmissionError(
            f"--name {name!r} must be a Python identifier (letters, digits, _): it names a class"
        )
    if not 0 <= team_id <= 99:
        raise SubmissionError(f"--team_id {team_id} must be between 0 and 99 (the challenge's two digits)")
    from ehat.archs import prepare_for_inference

    model = prepare_for_inference(resolved.model.cpu().eval())
    out = Path(out)
    model_file = out / "models" / f"team{team_id:02d}_{name}.py"
    weights_file = out / "model_zoo" / weights_name(team_id, name, year)
    snippet_file = out / "select_model.txt"
    existing = [str(p) for p in (model_file, weights_file, snippet_file) if p.exists()]
    if existing and not force:
        raise SubmissionError(f"{', '.join(existing)} exist(s): pass --force to overwrite, or another --out")
    source = generate_model_source(model, team_id, name, year)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    _self_check(source, model, state, class_name(team_id, name), resolved.data_range)
    snippet = select_model_branch(team_id, name, resolved.data_range, year)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(weights_file, buf.getvalue())
    atomic_write(model_file, lambda f: f.write(source.encode()))
    atomic_write_bytes(snippet_file, snippet.encode())
    return Submission(model_file, weights_file, snippet_file, snippet)
