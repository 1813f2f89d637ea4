"""Networks: HAT, EHAT, RLFN, each described by a :class:`NetworkDescriptor` in its arch file, and presets.

Importing an arch module registers its descriptor; the imports below are the one line per
built-in network (see :mod:`ehat.archs.descriptor` and docs/development.md).
"""

from __future__ import annotations

from ehat.archs.bsa import BranchWeights, branch_weight_sizes
from ehat.archs.build import build_network, create_model, network_kwargs, resolve_network_config
from ehat.archs.descriptor import (
    ExportStep,
    NetworkDescriptor,
    StateDictError,
    UnknownLayoutError,
    descriptor_of,
    detect_network,
    list_networks,
    network_config_from_state_dict,
    prepare_for_inference,
    register_basicsr_archs,
    register_network,
)
from ehat.archs.dual_attention import ChannelAttentionModule, DualAttention, PositionAttention
from ehat.archs.efdn_arch import EFDN
from ehat.archs.ehat_arch import EHAT
from ehat.archs.hat_arch import HAT
from ehat.archs.padding import crop_output, pad_to_multiple
from ehat.archs.presets import (
    NetworkArgumentError,
    NetworkConfigError,
    PretrainedWeights,
    UnknownNetworkError,
    get_preset,
    list_presets,
    list_pretrained,
    preset_config,
    pretrained_weights,
)
from ehat.archs.rlfn_arch import RLFN
from ehat.archs.span_arch import SPAN

__all__ = [
    "EFDN",
    "EHAT",
    "HAT",
    "RLFN",
    "SPAN",
    "BranchWeights",
    "ChannelAttentionModule",
    "DualAttention",
    "ExportStep",
    "NetworkDescriptor",
    "StateDictError",
    "UnknownLayoutError",
    "NetworkArgumentError",
    "NetworkConfigError",
    "PositionAttention",
    "PretrainedWeights",
    "UnknownNetworkError",
    "branch_weight_sizes",
    "build_network",
    "create_model",
    "crop_output",
    "descriptor_of",
    "detect_network",
    "get_preset",
    "list_presets",
    "list_networks",
    "list_pretrained",
    "network_config_from_state_dict",
    "network_kwargs",
    "pad_to_multiple",
    "prepare_for_inference",
    "preset_config",
    "pretrained_weights",
    "register_basicsr_archs",
    "register_network",
    "resolve_network_config",
]
