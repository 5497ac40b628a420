"""The one place that turns a config into its network.

The kinds of network a config describes:

* a network of the registry (`desed_task.nnet.registry`): the one ``net.type`` names (``crnn``
  when unset: the CRNN of the ``net:`` section, `desed_task.nnet.CRNN`, the 2021 one or with
  ``net.use_embeddings: true`` the 2023 one fed pretrained (BEATs) embeddings), built by its
  contract from the rest of the ``net:`` section;
* ``ssep_sed``: the SSEP + SED ensemble (`desed_task.nnet.ensemble`) of two copies of that
  network (one whose contract is `separable`), fed (batch, 1 + sources, n_mels, frames) with the
  mixture first. A config describes it when it fine-tunes a pre-trained SED network on
  separated sources: its ``training.sed_checkpoint`` (the 2021 key of sep+sed.yaml) is set, as
  in every config and checkpoint of finetune_on_separated.py. Its options are the config's
  ``training.ensemble_mixture_dropout`` and ``training.ensemble_q_clamp``.

* ``tdcnpp``: the separation network of the SSEP + SED baseline (`desed_task.nnet.tdcnpp.TDCNpp`,
  Google's TDCN++), built from its hyper-parameters (`build_separation_network`); not described
  by a config's ``net:`` section, it is loaded from its converted file
  (`desed_task.separation.load_separator`).

Training scripts say which kind they train (train_sed.py the ``net.type`` network,
finetune_on_separated.py the ensemble); inference and export read it from the checkpoint's
config (`network_kind`, `network_needs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from desed_task.nnet.ensemble import SeparatedEnsemble
from desed_task.nnet.registry import (
    DEFAULT_NETWORK,
    network_arguments,
    network_contract,
    network_type,
)
from desed_task.nnet.tdcnpp import TDCNpp

CRNN_KIND = DEFAULT_NETWORK
SSEP_SED_KIND = "ssep_sed"
SEPARATION_KIND = "tdcnpp"


def fine_tunes_on_sources(config: dict) -> bool:
    """Whether a whole config fine-tunes a pre-trained SED network on separated sources
    (``training.sed_checkpoint`` set): its network is the SSEP + SED ensemble."""
    return bool((config.get("training") or {}).get("sed_checkpoint"))


def network_kind(config: dict) -> str:
    """``ssep_sed`` when the whole config fine-tunes a pre-trained SED network on separated
    sources (``training.sed_checkpoint`` set), else its ``net.type`` (``crnn`` when unset)."""
    return SSEP_SED_KIND if fine_tunes_on_sources(config) else network_type(config.get("net") or {})


@dataclass(frozen=True)
class NetworkNeeds:
    """What the network of a whole config is fed and how it exports: its contract
    (`desed_task.nnet.registry.NetworkContract`) read for the config.

    Attributes:
        type: its ``net.type``.
        embeddings: it also takes the clips' pretrained (BEATs) embeddings.
        sources: it takes the mixture and its separated sources, (batch, 1 + sources, n_mels,
            frames) with the mixture first (the SSEP + SED ensemble).
        onnx: it exports to ONNX.
        for_export: ``(network, n_tokens, n_frames)`` -> the network the exporter traces (the
            contract's; for the ensemble, the network itself).
    """

    type: str
    embeddings: bool
    sources: bool
    onnx: bool
    for_export: Callable[[nn.Module, int, int], nn.Module]


def network_needs(config: dict) -> NetworkNeeds:
    """The `NetworkNeeds` of a whole config (its ``net:`` section and, for the ensemble, its
    ``training.sed_checkpoint``)."""
    net = config.get("net") or {}
    contract = network_contract(net)
    sources = fine_tunes_on_sources(config)
    return NetworkNeeds(
        type=contract.name,
        embeddings=contract.takes_embeddings(net),
        sources=sources,
        onnx=contract.onnx,
        for_export=(lambda network, n_tokens, n_frames: network) if sources else contract.for_export,
    )


def build_network(net: dict, *, ensemble: dict | None = None) -> nn.Module:
    """The network a config's ``net:`` section describes, built by the contract of its
    ``net.type`` (`desed_task.nnet.registry`; ``crnn`` when unset).

    Building draws from the global torch generator as 2021 did: the network's initialisation,
    then for the ensemble q (``torch.rand(1)``; the two copies are deep copies).

    Args:
        net: the ``net:`` section, checked by the config check (`desed_task.config`), which
            also checks ``data.net_subsample`` against the network's time pooling.
        ensemble: None: the network. The config's ``training:`` section: the SSEP + SED ensemble
            of two copies of that network, fed the `MeanTeacher` layout (mixture first), with
            the section's ``ensemble_mixture_dropout`` (default true, 2021) and
            ``ensemble_q_clamp`` (default false, 2021).

    Returns:
        the network (a ``time_pooling`` attribute) or a `SeparatedEnsemble`, untrained.

    Raises:
        KeyError: an unregistered ``net.type``.
        ValueError: an unknown or unsupported ``net`` key (from the network), or an ensemble
            of a network that cannot be fine-tuned on sources (the config check says so first).
    """
    contract = network_contract(net)
    network = contract.build(**network_arguments(net))
    if ensemble is None:
        return network
    if not contract.separable or contract.takes_embeddings(net):
        raise ValueError(f"the SSEP + SED ensemble of this network ({contract.name}) is not implemented")
    return SeparatedEnsemble.from_pretrained(
        network,
        mixture_first=True,
        mixture_dropout=bool(ensemble.get("ensemble_mixture_dropout", True)),
        q_clamp=bool(ensemble.get("ensemble_q_clamp", False)),
    )


def build_separation_network(hparams: dict | None = None) -> TDCNpp:
    """The separation network (kind ``tdcnpp``), untrained.

    Args:
        hparams: `TDCNpp` keyword arguments (None: the published YFCC100M model's).

    Raises:
        TypeError: an unknown hyper-parameter.
    """
    return TDCNpp(**(hparams or {}))


def network_from_config(config: dict) -> nn.Module:
    """`build_network` for a whole config: the kind of `network_kind`."""
    ensemble = config["training"] if fine_tunes_on_sources(config) else None
    return build_network(config["net"], ensemble=ensemble)


def run_network(
    network: nn.Module, features: torch.Tensor, embeddings: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(strong, weak) of a network of `build_network` on its input features; one that takes
    embeddings (its contract's `takes_embeddings`, e.g. the CRNN with ``use_embeddings``) also
    gets the clips' embeddings, (batch, dim, tokens) or (batch, dim). Without embeddings the
    network is called on the features alone, as 2021 called it."""
    if embeddings is None:
        return network(features)
    return network(features, embeddings=embeddings)
