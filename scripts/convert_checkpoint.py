#!/usr/bin/env python
"""Convert any checkpoint EHAT accepts into ours (.pth), .safetensors, or team SKDADDYS's layout.

Examples:
  python scripts/convert_checkpoint.py model_zoo/SKDADDYS_Ehat.pth ehat_l.pth
  python scripts/convert_checkpoint.py ehat_l.pth ehat_l.safetensors
  python scripts/convert_checkpoint.py ehat_l.pth team.pth --to team
  python scripts/convert_checkpoint.py hat_x2.pth hat_x4.pth --scale 4 --upsampler keep
--scale writes the network at another scale, for a strict load (the other way is HAT's
path.strict_load_g: false): every tensor whose shape fits is copied; --upsampler keep also copies
the upsampler stages that fit (x2's stage becomes x4's first), drop leaves the whole upsampler
(upsample.*) at a fresh seeded initialization. Every key not copied is listed.
The network config is inferred from the weights (or taken from the file) and stored with them;
the converted file is loaded back and checked to give the same state dict before it is kept.
A problem with the files (unknown layout, unreadable input, unwritable output) prints one
``error: ...`` line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import ehat  # noqa: F401  (registers the architectures)
from ehat.atomic import atomic_torch_save, atomic_write_bytes
from ehat.checkpoints import (
    CheckpointError,
    expand_team_bsa,
    infer_config,
    read_checkpoint,
    read_state_dict,
    safetensors_metadata,
)
from ehat.errors import EhatError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="checkpoint to read (.pth/.pt/.safetensors, any accepted layout)")
    p.add_argument("output", help="file to write; .safetensors selects that format")
    p.add_argument(
        "--to", choices=["ours", "team"], default="ours", help="layout of the output (default: ours)"
    )
    p.add_argument("--param_key", default="auto", help="entry to read (default: params_ema, else params)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--scale", type=int, default=None, help="write the network at this scale (HAT/EHAT)")
    p.add_argument(
        "--upsampler",
        choices=["keep", "drop"],
        default=None,
        help="with --scale: copy the upsampler stages that fit (keep) or initialize it afresh (drop)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh initialization (--scale)")
    args = p.parse_args(argv)
    if args.scale is not None and args.scale < 1:
        p.error("--scale must be a positive integer")
    if (args.scale is None) != (args.upsampler is None):
        p.error("--scale and --upsampler go together: --scale N --upsampler keep|drop")
    return args


def change_scale(
    sd: dict[str, torch.Tensor], arch: dict, scale: int, upsampler: str, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict, list[str]]:
    """``sd`` (a HAT/EHAT state dict of config ``arch``) as the same network at ``scale``: a fresh network
    (seeded ``seed``) takes every tensor of ``sd`` whose shape fits, ``upsample.*`` only when ``upsampler``
    is ``'keep'``. Returns (state dict, config, keys left at the fresh initialization)."""
    from ehat.archs import build_network

    if "upscale" not in arch or arch.get("type") not in ("HAT", "EHAT"):
        raise CheckpointError(f"--scale works on HAT/EHAT checkpoints; this one is {arch.get('type')}")
    new_arch = {**arch, "upscale": scale}
    torch.manual_seed(seed)
    out = {k: v.detach().clone() for k, v in build_network(dict(new_arch)).state_dict().items()}
    fresh = []
    for k in out:
        v = sd.get(k)
        fits = v is not None and v.shape == out[k].shape
        if fits and (upsampler == "keep" or not k.startswith("upsample.")):
            out[k] = v
        else:
            fresh.append(k)
    return out, new_arch, fresh


def convert(
    src: Path,
    dst: Path,
    to: str = "ours",
    param_key: str = "auto",
    scale: int | None = None,
    upsampler: str = "keep",
    seed: int = 0,
) -> dict:
    """Convert ``src`` to ``dst`` (at ``scale``, see :func:`change_scale`); returns the network config written."""
    raw = read_checkpoint(src)
    sd = read_state_dict(raw, param_key)
    arch = raw.get("arch") if isinstance(raw.get("arch"), dict) else infer_config(sd, source=str(src))
    if scale is not None:
        sd, arch, fresh = change_scale(sd, arch, scale, upsampler, seed)
        print(f"x{scale}: {len(fresh)} tensor(s) at a fresh initialization (seed {seed}): {', '.join(fresh)}")
    if to == "team":
        out_sd = expand_team_bsa(sd)
        if dst.suffix == ".safetensors":
            raise CheckpointError("the team's layout is a .pth file (their test_demo.py loads 'params')")
        atomic_torch_save({"params": out_sd}, dst)
    elif dst.suffix == ".safetensors":
        from safetensors.torch import save

        tensors = {k: v.contiguous() for k, v in sd.items()}
        atomic_write_bytes(dst, save(tensors, metadata=safetensors_metadata(arch)))
    else:
        atomic_torch_save({"params": sd, "arch": arch}, dst)
    back = read_state_dict(dst)
    if back.keys() != sd.keys() or any(not torch.equal(back[k], sd[k]) for k in sd):
        dst.unlink()
        raise CheckpointError(f"round trip check failed for {dst}; nothing was written")
    return arch


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    src, dst = Path(args.input), Path(args.output)
    if dst.exists() and not args.force:
        print(f"error: {dst} exists (pass --force to overwrite)", file=sys.stderr)
        return 2
    try:
        arch = convert(src, dst, args.to, args.param_key, args.scale, args.upsampler or "keep", args.seed)
    except (EhatError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {dst} ({args.to} layout): {arch.get('type')} {json.dumps(arch)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
