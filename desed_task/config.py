"""YAML configuration: loading and checking against the schema of the 2021 recipe's keys.

A config with an unknown key, a missing required key or a value of the wrong type is refused
with the key's dotted name, before any data is read or any model is built.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from desed_task.errors import UserError
from desed_task.features.network_input import MIXTURE_INPUTS
from desed_task.nnet.registry import DEFAULT_NETWORK, network_contract, network_types
from desed_task.sets import BATCH_PARTS, FOLDER_SETS, FOLDER_SUFFIXES, SETS


class ConfigError(UserError):
    """The configuration is not usable; the message names the file and the key."""


# type spec: a type, a tuple of accepted types, or ("list", item_spec); None in a tuple = nullable
_NUM = (int, float)
_OPT_STR = (str, type(None))
_INT_LIST = ("list", int)
_NUM_LIST = ("list", _NUM)

# (spec, required)
SCHEMA: dict[str, dict[str, tuple[Any, bool]]] = {
    "training": {
        "batch_size": (_INT_LIST, True),
        "batch_size_val": (int, True),
        "const_max": (_NUM, True),
        "n_epochs_warmup": (int, True),
        "num_workers": (int, False),
        "n_epochs": (int, True),
        "early_stop_patience": (int, True),
        "accumulate_batches": (int, False),
        "gradient_clip": (_NUM, False),
        "median_window": (int, True),
        "val_thresholds": (_NUM_LIST, False),
        "n_test_thresholds": (int, True),
        "clip_events_to_durations": (bool, False),
        # true (2021): decoded onsets and offsets clamped to data.audio_max_len
        "clamp_events_to_audio_max_len": (bool, False),
        "ema_factor": (_NUM, True),
        "self_sup_loss": (str, True),
        "backend": (_OPT_STR, False),
        "validation_interval": (int, False),
        "weak_split": (_NUM, True),
        "seed": (int, True),
        "mixup": (_OPT_STR, False),
        "obj_metric_synth_type": (_OPT_STR, False),
        "max_steps_per_epoch": ((int, type(None)), False),
        "precision": ((str, int, type(None)), False),
        "num_nodes": (int, False),
        # post-processing file of `python -m desed_task.postprocessing tune` (unset: 2021)
        "postprocessing": (_OPT_STR, False),
        # SSEP + SED fine-tuning
        "sed_yaml": (_OPT_STR, False),
        "sed_checkpoint": (_OPT_STR, False),
        "sed_model": (_OPT_STR, False),
        # the separation model: the converted PyTorch file (python -m desed_task.separation
        # convert), and/or the TensorFlow meta graph and checkpoint prefix of 2021
        "sep_model": (_OPT_STR, False),
        "sep_checkpoint": (_OPT_STR, False),
        "sep_graph": (_OPT_STR, False),
        "ensemble_mixture_input": (_OPT_STR, False),  # sum_of_sources (2021) or mixture
        "ensemble_mixture_dropout": (bool, False),  # true (2021): frozen copy's dropout on
        "ensemble_q_clamp": (bool, False),  # false (2021): q unconstrained
        "persistent_workers": (bool, False),  # false (2021): loader workers start anew each epoch
        # the 2023 recipe's Trainer switches (unset: Lightning's defaults, as 2021 and 2023 ran)
        "deterministic": (bool, False),
        "enable_progress_bar": (bool, False),
        # false (2023): mixup mixes the mels and labels only; true: the embeddings too, alike
        "mixup_embeddings": (bool, False),
        # false (2021, 2023's default): true trains data.strong_folder's clips with the
        # synthetic ones, as 2023's train_pretrained.py --strong_real
        "strong_real": (bool, False),
    },
    "scaler": {
        "statistic": (str, True),
        "normtype": (str, True),
        "dims": (_INT_LIST, True),
        "savepath": (_OPT_STR, False),
    },
    "data": {
        "audio_max_len": (_NUM, True),
        "fs": (int, True),
        "net_subsample": (int, True),
        "check_audio": (bool, False),
        "sort_unlabeled": (bool, False),  # true (default): sorted names; false: the folder's listing order (2021's glob)
        "resampler": (_OPT_STR, False),  # kaiser_best (2021) or soxr_hq
        # false (2021): strongly labelled clips without any event (15 of DESED's dev-test) are
        # kept, scored and written; true (2023's dropna): left out of their set
        "drop_clips_without_events": (bool, False),
        # the folders and tables of every set of desed_task.sets
        **{f"{spec.name}{suffix}": (_OPT_STR, False) for spec in FOLDER_SETS for suffix in FOLDER_SUFFIXES},
        **{key: (_OPT_STR, False) for spec in SETS for key in (spec.tsv_key, spec.durations_key) if key},
    },
    "opt": {
        "lr": (_NUM, True),
        # false (2021): the first optimizer step at Adam's initial 1e-3, the warm-up from step 2
        "warmup_first_step": (bool, False),
        # false (2021): as above; true (2023): the first step at opt.lr (2023 built Adam with
        # opt.lr, its scheduler set the warm-up rate only after that step)
        "first_step_at_lr": (bool, False),
    },
    "feats": {
        "n_mels": (int, True),
        "n_filters": (int, True),
        "hop_length": (int, True),
        "n_window": (int, True),
        "sample_rate": (int, True),
        "f_min": (_NUM, True),
        "f_max": (_NUM, True),
    },
    # the network: `type` names its contract in the registry (desed_task.nnet.registry; crnn,
    # the 2021 CRNN, when unset), whose keys are the section's other keys (`net_schema`)
    "net": {
        "type": (str, False),
    },
    # the 2023 recipe's section (pretrained embeddings) plus `checkpoint`, the BEATs .pt file
    "pretrained": {
        "model": (str, True),
        "e2e": (bool, False),
        "freezed": (bool, False),
        "extracted_embeddings_dir": (_OPT_STR, False),
        "checkpoint": (_OPT_STR, False),
    },
    "demo": {
        "root": (str, True),
        "seed": (int, False),
        "log_dir": (str, False),  # default --log_dir of runs with this config
        "sizes": (dict, False),  # clips per set, see desed_task.data_generation.demo.DemoSizes
        # write a random BEATs in the official format at pretrained.checkpoint when absent
        # (desed_task.embeddings.standin); the embeddings of the demo are then extracted with it
        "beats_standin": (bool, False),
        # write a small random PyTorch TDCN++ at training.sep_model when absent (the SSEP demo)
        "separation_standin": (bool, False),
    },
    # how the separation model runs (desed_task.separation.backend); not in 2021
    "separation": {
        "backend": (_OPT_STR, False),  # pytorch (default) or tensorflow (2021's session, the reference)
        "batch_size": ((int, type(None)), False),  # clips per pass; unset: 16 on a GPU, 1 on the CPU
    },
}
OBJ_METRIC_SYNTH_TYPES = (None, "intersection", "event")
"""Values of ``training.obj_metric_synth_type`` (None: intersection), as 2021 accepted."""
PRETRAINED_MODELS = ("beats",)
"""Values of ``pretrained.model``: the embedding extractors this project implements."""
REQUIRED_SECTIONS = ("training", "scaler", "data", "opt", "feats", "net")

# value ranges, checked with the types: (lowest, highest), None = unbounded
_POSITIVE, _NON_NEGATIVE, _FRACTION = (1, None), (0, None), (0, 1)
RANGES: dict[str, tuple[Any, Any]] = {
    "training.batch_size": _NON_NEGATIVE,  # each of the three; their sum must be positive
    "training.batch_size_val": _POSITIVE,
    "training.const_max": _NON_NEGATIVE,
    "training.n_epochs_warmup": _NON_NEGATIVE,
    "training.num_workers": _NON_NEGATIVE,
    "training.n_epochs": _POSITIVE,
    "training.early_stop_patience": _NON_NEGATIVE,
    "training.accumulate_batches": _POSITIVE,
    "training.gradient_clip": _NON_NEGATIVE,
    "training.median_window": _POSITIVE,
    "training.val_thresholds": _FRACTION,
    "training.n_test_thresholds": _POSITIVE,
    "training.ema_factor": _FRACTION,
    "training.validation_interval": _POSITIVE,
    "training.weak_split": _FRACTION,
    "training.max_steps_per_epoch": _POSITIVE,
    "training.num_nodes": _POSITIVE,
    "separation.batch_size": _POSITIVE,
    "data.audio_max_len": (1e-3, None),
    "data.fs": _POSITIVE,
    "data.net_subsample": _POSITIVE,
    "opt.lr": (1e-12, None),
    **{f"feats.{k}": _POSITIVE for k in ("n_mels", "n_filters", "hop_length", "n_window", "sample_rate")},
    "feats.f_min": _NON_NEGATIVE,
    "feats.f_max": _POSITIVE,
}


def _check_ranges(config: dict, source: str) -> None:
    net_ranges = {f"net.{k}": key.bounds for k, key in network_contract(config["net"]).keys.items() if key.bounds}
    for dotted, (low, high) in {**RANGES, **net_ranges}.items():
        section, key = dotted.split(".")
        value = config.get(section, {}).get(key)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if (low is not None and item < low) or (high is not None and item > high):
                bounds = f">= {low}" if high is None else f"between {low} and {high}"
                raise ConfigError(f"{source}: '{dotted}' must be {bounds}, got {value!r}")


def _type_name(spec: Any) -> str:
    if isinstance(spec, tuple) and spec and spec[0] == "list":
        return f"list of {_type_name(spec[1])}"
    if isinstance(spec, tuple):
        return " or ".join("null" if t is type(None) else t.__name__ for t in spec)
    return spec.__name__


def _matches(value: Any, spec: Any) -> bool:
    if isinstance(spec, tuple) and spec and spec[0] == "list":
        return isinstance(value, list) and all(_matches(v, spec[1]) for v in value)
    types = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool) and bool not in types:
        return False  # yaml `yes` must not pass for a number
    return isinstance(value, types)


def validate_config(config: dict, source: str = "<config>") -> dict:
    """Check `config` against `SCHEMA`; returns it with `X_folder_16k` folded into `X_folder`."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    for section in config:
        if section not in SCHEMA:
            raise ConfigError(
                f"{source}: unknown section '{section}' (known: {', '.join(SCHEMA)})"
            )
    for section in REQUIRED_SECTIONS:
        if section not in config:
            raise ConfigError(f"{source}: missing section '{section}'")
    for section, values in config.items():
        if values is None:
            values = config[section] = {}
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping")
        schema = net_schema(values, source) if section == "net" else SCHEMA[section]
        for key, value in values.items():
            if key not in schema:
                raise ConfigError(f"{source}: unknown key '{section}.{key}'")
            spec, _ = schema[key]
            if not _matches(value, spec):
                raise ConfigError(
                    f"{source}: '{section}.{key}' must be {_type_name(spec)}, "
                    f"got {type(value).__name__} {value!r}"
                )
        for key, (_, required) in schema.items():
            if required and key not in values:
                raise ConfigError(f"{source}: missing key '{section}.{key}'")
    data = config["data"]
    for name in (spec.name for spec in FOLDER_SETS):
        alias = data.pop(f"{name}_folder_16k", None)
        if data.get(f"{name}_folder") is None and alias is not None:
            data[f"{name}_folder"] = alias
    _check_ranges(config, source)
    training = config["training"]
    if len(training["batch_size"]) != len(BATCH_PARTS) or sum(training["batch_size"]) == 0:
        raise ConfigError(
            f"{source}: 'training.batch_size' must be [{', '.join(BATCH_PARTS)}] clips, not all 0"
        )
    if training["self_sup_loss"] not in ("mse", "bce"):
        raise ConfigError(f"{source}: 'training.self_sup_loss' must be mse or bce")
    if training.get("mixup") not in (None, "soft", "hard"):
        raise ConfigError(f"{source}: 'training.mixup' must be soft, hard or null")
    if training.get("obj_metric_synth_type") not in OBJ_METRIC_SYNTH_TYPES:
        # 2021 raised NotImplementedError for any other value (at the first validation)
        raise ConfigError(
            f"{source}: 'training.obj_metric_synth_type' must be intersection, event or empty "
            f"(= intersection), got {training['obj_metric_synth_type']!r}"
        )
    if training.get("ensemble_mixture_input") not in (None, *MIXTURE_INPUTS):
        raise ConfigError(
            f"{source}: 'training.ensemble_mixture_input' must be sum_of_sources (2021) or "
            f"mixture, got {training['ensemble_mixture_input']!r}"
        )
    if config["opt"].get("warmup_first_step") and config["opt"].get("first_step_at_lr"):
        raise ConfigError(
            f"{source}: 'opt.warmup_first_step' and 'opt.first_step_at_lr' both set the first step's "
            "learning rate: keep one (warm-up rate, or opt.lr as 2023)"
        )
    _check_network(config, source)
    _check_embeddings(config, source)
    return config


def net_schema(net: dict, source: str) -> dict[str, tuple[Any, bool]]:
    """The schema of a ``net:`` section: ``type``, then the keys of its network's contract
    (`desed_task.nnet.registry`), none required (the network's defaults fill them).

    Raises:
        ConfigError: ``net.type`` is not a registered network.
    """
    name = net.get("type", DEFAULT_NETWORK)
    if name not in network_types():
        raise ConfigError(f"{source}: 'net.type' must be one of {', '.join(network_types())}, got {name!r}")
    return {**SCHEMA["net"], **{k: (key.spec, False) for k, key in network_contract(net).keys.items()}}


def _check_network(config: dict, source: str) -> None:
    """The ``net:`` values its contract allows, ``data.net_subsample`` against the network's
    time pooling, and a network the SSEP + SED fine-tuning (``training.sed_checkpoint``) can
    wrap."""
    net = config["net"]
    contract = network_contract(net)
    for key, spec in contract.keys.items():
        if spec.allowed is not None and key in net and net[key] not in spec.allowed:
            raise ConfigError(f"{source}: 'net.{key}' must be one of {', '.join(spec.allowed)}, got {net[key]!r}")
    pooling, keys = contract.time_pooling(net), contract.time_pooling_keys
    if int(config["data"]["net_subsample"]) != pooling:
        how = f" (the product of the time factors of {' and '.join(f'net.{k}' for k in keys)})" if keys else ""
        raise ConfigError(
            f"{source}: data.net_subsample is {config['data']['net_subsample']} but the network pools time by "
            f"{pooling}{how}: set data.net_subsample: {pooling}" + (f", or change net.{keys[0]}" if keys else "")
        )
    if config["training"].get("sed_checkpoint") and (not contract.separable or contract.takes_embeddings(net)):
        what = "a CRNN fed pretrained embeddings (net.use_embeddings: true)" if contract.separable else \
            f"net.type {contract.name}"
        raise ConfigError(
            f"{source}: the SSEP + SED ensemble (training.sed_checkpoint) of {what} is not implemented: "
            "fine-tune a 2021 CRNN (net.use_embeddings: false)"
        )


def _check_embeddings(config: dict, source: str) -> None:
    pretrained = config.get("pretrained")
    if pretrained is None:
        return
    if pretrained["model"] not in PRETRAINED_MODELS:
        raise ConfigError(
            f"{source}: 'pretrained.model' must be one of {', '.join(PRETRAINED_MODELS)} (the 2023 "
            f"recipe's panns and ast are not implemented), got {pretrained['model']!r}"
        )
    if pretrained.get("freezed") is False and not pretrained.get("e2e"):
        # 2023: precomputed embeddings cannot follow an encoder that is being trained
        raise ConfigError(f"{source}: 'pretrained.freezed: false' needs 'pretrained.e2e: true'")
    if pretrained.get("e2e"):
        # 2023 ran only PANNs and AST inside training; its BEATs baseline read extracted files
        raise ConfigError(
            f"{source}: 'pretrained.e2e: true' (the encoder run inside training) is not implemented: "
            "the 2023 BEATs baseline reads extracted embeddings (e2e: false, freezed: true)"
        )


def load_config(path: str | Path) -> dict:
    """Read and check a YAML config; relative data paths stay relative to the working folder,
    as in the 2021 recipe."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    return validate_config(config, str(path))


# how a tested checkpoint's outputs are decoded and scored, not how it was trained
TEST_TIME_KEYS = ("postprocessing", "clip_events_to_durations", "clamp_events_to_audio_max_len")
# where a tested checkpoint's embeddings and BEATs file are: paths, as the data paths
PRETRAINED_PATH_KEYS = ("extracted_embeddings_dir", "checkpoint")
# where the separation model is and how it runs: from the current config when it sets them
SEPARATION_PATH_KEYS = ("sep_model", "sep_graph", "sep_checkpoint")


def merge_for_test(checkpoint_config: dict, current: dict) -> dict:
    """The 2021 rule for testing a checkpoint: network and training settings from the
    checkpoint, data paths (and demo settings) from the current config; the test-time
    ``training`` keys (``TEST_TIME_KEYS``: post-processing, clipping and clamping of the
    decoded events) from the current config too, unset there meaning their default; so are
    the paths of the ``pretrained:`` section (``PRETRAINED_PATH_KEYS``: the embeddings folder
    and the BEATs file) when the current config has that section, and the separation model's
    files (``SEPARATION_PATH_KEYS``) and ``separation:`` section when the current config sets
    them."""
    merged = copy.deepcopy(checkpoint_config)
    merged["data"] = copy.deepcopy(current["data"])
    training = merged.setdefault("training", {})
    for key in TEST_TIME_KEYS:
        training.pop(key, None)
        if current.get("training", {}).get(key) is not None:
            training[key] = current["training"][key]
    if "demo" in current:
        merged["demo"] = copy.deepcopy(current["demo"])
    separation_files = {k: v for k, v in current.get("training", {}).items() if k in SEPARATION_PATH_KEYS and v}
    if separation_files:
        for key in SEPARATION_PATH_KEYS:
            training.pop(key, None)
        training.update(separation_files)
    if current.get("separation"):
        merged["separation"] = copy.deepcopy(current["separation"])
    if current.get("pretrained") and merged.get("pretrained"):
        for key in PRETRAINED_PATH_KEYS:
            merged["pretrained"].pop(key, None)
            if current["pretrained"].get(key) is not None:
                merged["pretrained"][key] = current["pretrained"][key]
    return merged
