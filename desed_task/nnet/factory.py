"""The one place that turns a config into its network.

The kinds of network a config describes:

* ``crnn``: the CRNN of the ``net:`` section (`desed_task.nnet.CRNN`): the 2021 one, or with
  ``net.use_embeddings: true`` the 2023 one fed pretrained (BEATs) embeddings;
* ``ssep_sed``: the SSEP + SED ensemble (`desed_task.nnet.ensemble`) of two copies of that CRNN,
  fed (batch, 1 + sources, n_mels, frames) with the mixture first. A config describes it when
  it fine-tunes a pre-trained SED network on separated sources: its ``training.sed_checkpoint``
  (the 2021 key of sep+sed.yaml) is set, as in every config and checkpoint of
  finetune_on_separated.py. Its options are the config's ``training.ensemble_mixture_dropout``
  and ``training.ensemble_q_clamp``.

* ``tdcnpp``: the separation network of the SSEP + SED baseline (`desed_task.nnet.tdcnpp.TDCNpp`,
  Google's TDCN++), built from its hyper-parameters (`build_separation_network`); not described
  by a config's ``net:`` section, it is loaded from its converted file
  (`desed_task.separation.load_separator`).

Training scripts say which kind they train (train_sed.py the CRNN, finetune_on_separated.py the
ensemble); inference and export read it from the checkpoint's config (`network_kind`).
"""

from __future__ import annotations

import torch
from torch import nn

from desed_task.config import ConfigError
from desed_task.nnet.CRNN import CRNN
from desed_task.nnet.ensemble import SeparatedEnsemble
from desed_task.nnet.tdcnpp import TDCNpp

CRNN_KIND = "crnn"
SSEP_SED_KIND = "ssep_sed"
SEPARATION_KIND = "tdcnpp"
NETWORK_KINDS = (CRNN_KIND, SSEP_SED_KIND, SEPARATION_KIND)


def network_kind(config: dict) -> str:
    """``ssep_sed`` when the whole config fine-tunes a pre-trained SED network on separated
    sources (``training.sed_checkpoint`` set), else ``crnn``."""
    return SSEP_SED_KIND if (config.get("training") or {}).get("sed_checkpoint") else CRNN_KIND


def build_network(net: dict, *, ensemble: dict | None = None, net_subsample: int | None = None) -> nn.Module:
    """The network a config's ``net:`` section describes.

    Building draws from the global torch generator as 2021 did: the CRNN's initialisation,
    then for the ensemble q (``torch.rand(1)``; the two copies are deep copies).

    Args:
        net: the ``net:`` section (keys of `CRNN`).
        ensemble: None: the CRNN. The config's ``training:`` section: the SSEP + SED ensemble
            of two copies of that CRNN, fed the `MeanTeacher` layout (mixture first), with the
            section's ``ensemble_mixture_dropout`` (default true, 2021) and
            ``ensemble_q_clamp`` (default false, 2021).
        net_subsample: the config's ``data.net_subsample``, checked against the network's time
            pooling (None: not checked).

    Returns:
        the CRNN (``time_pooling`` attribute) or a `SeparatedEnsemble`, untrained.

    Raises:
        ValueError: an unknown or unsupported ``net`` key (from `CRNN`).
        ConfigError: ``net_subsample`` differs from the network's time pooling.
    """
    crnn = CRNN(**net)
    if net_subsample is not None and int(net_subsample) != crnn.time_pooling:
        raise ConfigError(
            f"data.net_subsample is {net_subsample} but the network pools time by "
            f"{crnn.time_pooling} (the product of the time factors of net.pooling and "
            f"net.stride): set data.net_subsample: {crnn.time_pooling}, or change net.pooling"
        )
    if ensemble is None:
        return crnn
    if crnn.use_embeddings:
        raise ConfigError(
            "the SSEP + SED ensemble of a CRNN fed pretrained embeddings (net.use_embeddings: true) "
            "is not implemented: fine-tune a 2021 CRNN (net.use_embeddings: false)"
        )
    return SeparatedEnsemble.from_pretrained(
        crnn,
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
    """`build_network` for a whole config: the kind of `network_kind`, ``data.net_subsample``
    checked."""
    ensemble = config["training"] if network_kind(config) == SSEP_SED_KIND else None
    return build_network(config["net"], ensemble=ensemble, net_subsample=config["data"]["net_subsample"])


def run_network(
    network: nn.Module, features: torch.Tensor, embeddings: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(strong, weak) of a network of `build_network` on its input features; a CRNN built with
    ``use_embeddings`` also takes the clips' embeddings, (batch, dim, tokens) or (batch, dim).
    Without embeddings the network is called on the features alone, as 2021 called it."""
    if embeddings is None:
        return network(features)
    return network(features, embeddings=embeddings)
