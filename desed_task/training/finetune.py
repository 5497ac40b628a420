"""The student of the SSEP + SED fine-tuning: a pre-trained CRNN in a `SeparatedEnsemble`.

`build_ensemble_student` is the `build_student` of finetune_on_separated.py (see
`desed_task.training.cli.run`). As in the 2021 recipe the pre-trained SED system is
``training.sed_checkpoint`` (one of ours or the official 2021 one), its network configuration
``training.sed_yaml`` (the pre-trained run's hparams.yaml), and ``training.sed_model`` says
which of its two networks is fine-tuned ("teacher", the 2021 default, or "student").

Differences from 2021: without ``sed_yaml`` the network configuration is read from the
checkpoint's own hyper-parameters (ours and the official files keep it there), else the
config's ``net:``; the `net:` section of the fine-tuning config is replaced by the network
actually loaded, so that the fine-tuned checkpoint's hyper-parameters rebuild it for
``--test_from_checkpoint``, inference and export (`desed_task.nnet.build_network`: its
``training.sed_checkpoint`` says it is the ensemble, ``training.ensemble_*`` its options).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import yaml
from torch import nn

from desed_task.checkpoints import (
    HYPER_PARAMETERS,
    MODELS,
    STATE_DICT,
    CheckpointError,
    load_checkpoint,
    network_name,
)
from desed_task.config import ConfigError, validate_config
from desed_task.nnet import build_network
from desed_task.nnet.ensemble import SeparatedEnsemble

log = logging.getLogger(__name__)

"""Values of ``training.sed_model``: the `sed_<name>.` network of the pre-trained checkpoint."""


def build_ensemble_student(config: dict, checkpoint: dict | None) -> nn.Module:
    """The ensemble to fine-tune (or to test), fed (batch, 1 + sources, n_mels, frames), built
    by `desed_task.nnet.build_network` from the config's ``net`` and ``training`` sections.

    Args:
        config: the checked config. When fine-tuning, its ``net`` section is set to the
            pre-trained network's configuration (saved with the fine-tuned checkpoints).
        checkpoint: None to fine-tune: both copies get the pre-trained weights of
            ``training.sed_checkpoint``. A fine-tuned checkpoint (``--test_from_checkpoint``):
            the same structure is built from ``config["net"]`` (the checkpoint's) and left
            untrained, the caller loads the checkpoint's weights into it.

    Raises:
        ConfigError: ``training.sed_checkpoint`` unset, ``sed_model`` unknown, ``sed_yaml``
            unreadable or with an invalid ``net`` section, ``data.net_subsample`` not the
            network's time pooling.
        CheckpointError: the pre-trained checkpoint is missing, unreadable or does not hold
            the network its configuration describes (the file is named).
    """
    training = config["training"]
    if checkpoint is not None:
        return _ensemble(config)
    path = training.get("sed_checkpoint")
    if not path:
        raise ConfigError(
            "training.sed_checkpoint is not set: give the pre-trained SED checkpoint to fine-tune "
            "(e.g. exp/2021_baseline/best.ckpt of train_sed.py, or the official 2021 one)"
        )
    try:
        sed_checkpoint = load_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(
            f"training.sed_checkpoint: {err}. It is the pre-trained SED model to fine-tune: train "
            f"one with train_sed.py (its LOG_DIR/best.ckpt) or get the official 2021 one"
        ) from err
    net = pretrained_net_config(config, sed_checkpoint, path)
    pretrained = load_pretrained_sed(net, sed_checkpoint, path, training.get("sed_model") or "teacher")
    if net != config["net"]:
        log.info("net: the pre-trained network's configuration replaces the config's `net:` section")
    config["net"] = net
    # 2021 then built the network to fine-tune anew (and copied the weights in): building it
    # here too leaves the seeded generator where 2021's was when q is drawn
    ensemble = _ensemble(config)
    for copy_of_sed in (ensemble.multisrc_model, ensemble.monaural_model):
        copy_of_sed.load_state_dict(pretrained.state_dict())
    return ensemble


def _ensemble(config: dict) -> SeparatedEnsemble:
    """Both copies of the config's CRNN, the mixture copy frozen, the other with frozen batch
    norm, q uniform in [0, 1) as in 2021 (drawn from the seeded torch generator: after two
    networks' initialisations when fine-tuning, the same value as 2021's for the same seed).
    Options: ``training.ensemble_mixture_dropout`` and ``training.ensemble_q_clamp``."""
    ensemble = build_network(config["net"], ensemble=config["training"])
    log.info("ensemble weight q starts at %.9f", float(ensemble.q.detach()))
    return ensemble


def pretrained_net_config(config: dict, sed_checkpoint: dict, path: str | Path) -> dict:
    """The pre-trained network's ``net:`` section: from ``training.sed_yaml`` when set, else
    the checkpoint's hyper-parameters, else the config's own, checked against the schema."""
    sed_yaml = config["training"].get("sed_yaml")
    if sed_yaml:
        net, source = _net_from_yaml(Path(sed_yaml)), f"{sed_yaml} (training.sed_yaml)"
    else:
        hparams = sed_checkpoint.get(HYPER_PARAMETERS)
        net = hparams.get("net") if isinstance(hparams, dict) else None
        source = f"{path} (hyper_parameters)"
        if not isinstance(net, dict):
            log.warning("%s: no `net` hyper-parameters; using the config's `net:` section", path)
            net, source = config["net"], "the config's net section"
    net = dict(net)
    try:  # the schema of `net:` is checked through a copy of the whole config
        validate_config({**copy.deepcopy(config), "net": net}, source)
    except ConfigError as err:
        raise ConfigError(f"pre-trained SED network: {err}") from err
    log.info("pre-trained SED network configuration from %s", source)
    return net


def _net_from_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: training.sed_yaml not found (leave it empty to read the network "
                          f"configuration from the checkpoint)")
    try:
        hparams = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: training.sed_yaml is not plain YAML ({err})") from err
    if not isinstance(hparams, dict) or not isinstance(hparams.get("net"), dict):
        raise ConfigError(f"{path}: training.sed_yaml has no `net:` section")
    return hparams["net"]


def load_pretrained_sed(net: dict, sed_checkpoint: dict, path: str | Path, which: str) -> nn.Module:
    """The network built from `net` holding the checkpoint's ``sed_<which>.*`` weights."""
    if which not in MODELS:
        raise ConfigError(f"training.sed_model must be one of {MODELS}, got {which!r}")
    state = sed_checkpoint.get(STATE_DICT)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no state_dict in the pre-trained SED checkpoint")
    prefix = f"{network_name(which)}."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise CheckpointError(f"{path}: no {prefix}* weights (training.sed_model: {which})")
    if any(k.startswith(("multisrc_model.", "monaural_model.")) for k in weights):
        raise CheckpointError(
            f"{path}: this is a fine-tuned SSEP + SED checkpoint; training.sed_checkpoint must be "
            f"a SED checkpoint of train_sed.py (test this one with --test_from_checkpoint)"
        )
    model = build_network(net)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: the {prefix}* weights do not fit the network configuration "
            f"(training.sed_yaml or the checkpoint's hyper-parameters): {str(err).splitlines()[0]}"
        ) from err
    log.info("loaded the pre-trained SED %s from %s", which, path)
    return model
