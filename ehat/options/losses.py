"""The loss slots of ``train``: every fact about a loss key, declared once.

A slot is an option key under ``train`` (``pixel_opt``, ``perceptual_opt``, ``gan_opt``) taking a
basicsr loss and its arguments. :data:`LOSS_SLOTS` is read by the options (the fields of
:class:`~ehat.options.train.TrainOptions` are made from it, :func:`~ehat.options.components.check_loss`
suggests losses of the slot's kind, the GAN-only rule, the perceptual loss's VGG check), by the
option reference (the field docs) and by the trainer (which slots it builds and the real-world
target each one compares with). Adding a loss key = one :class:`LossSlot` here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GAN_ONLY", "GAN_MODEL_TYPES", "LOSS_SLOTS", "LossSlot", "generator_slots", "slot_of"]

GAN_MODEL_TYPES = ("RealHATGANModel", "RealEHATGANModel")
"""Real-world SR with a discriminator (``network_d``, ``optim_d``, ``gan_opt``)."""
GAN_ONLY = f"only for the GAN model types ({', '.join(GAN_MODEL_TYPES)})"


@dataclass(frozen=True)
class LossSlot:
    """One loss key of ``train``.

    ``key``: the option key (``train.<key>``); ``kinds``: the basicsr losses that belong under it (a
    typo is answered with one of them; a known loss of another slot is refused naming its slot);
    ``doc``: the option reference's description; ``gan``: only for the GAN model types and computed
    on the discriminator's verdict, not on an (SR, HR) pair; ``log_name``: the name the training log
    shows its value under; ``usm_key``: the top-level key that makes the GAN models compare with the
    USM-sharpened target (HAT's ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm``, each a field of
    :class:`~ehat.options.degradations.RealWorldOptions`); None: the slot always compares with the
    target as given.
    """

    key: str
    kinds: tuple[str, ...]
    doc: str
    log_name: str
    usm_key: str | None = None
    gan: bool = False


LOSS_SLOTS: tuple[LossSlot, ...] = (
    LossSlot(
        "pixel_opt",
        ("L1Loss", "MSELoss", "CharbonnierLoss", "WeightedTVLoss"),
        "a basicsr loss (L1Loss, MSELoss, CharbonnierLoss...)",
        log_name="pix",
        usm_key="l1_gt_usm",
    ),
    LossSlot(
        "perceptual_opt",
        ("PerceptualLoss",),
        "basicsr's PerceptualLoss and its arguments",
        log_name="percep",
        usm_key="percep_gt_usm",
    ),
    LossSlot(
        "gan_opt",
        ("GANLoss", "MultiScaleGANLoss"),
        f"basicsr's GANLoss and its arguments ({GAN_ONLY})",
        log_name="gan",
        usm_key="gan_gt_usm",
        gan=True,
    ),
)
"""Every loss key of ``train``, in the order the trainer adds them up."""


def generator_slots() -> tuple[LossSlot, ...]:
    """The slots computed on (SR, HR) pairs (every model type; at least one is required)."""
    return tuple(s for s in LOSS_SLOTS if not s.gan)


def slot_of(key: str) -> LossSlot | None:
    """The slot of option key ``key`` (``pixel_opt`` or a dotted ``train.pixel_opt``), else None."""
    return next((s for s in LOSS_SLOTS if key == s.key or key.endswith(f".{s.key}")), None)
