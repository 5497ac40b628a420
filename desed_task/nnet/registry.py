"""The network registry: a config's ``net.type`` names a `NetworkContract`, the one place that
says what a network is built from and what it needs.

A network of the registry is rebuilt from a checkpoint as asteroid rebuilds its models from
``{model_name, model_args, state_dict}``: here the name is ``net.type`` (``crnn`` when unset,
so every 2021 config and checkpoint is a CRNN), the arguments the rest of the ``net:`` section
and the state the checkpoint's ``sed_student.`` / ``sed_teacher.`` weights
(`desed_task.checkpoints`).

Who reads a contract instead of testing names or keys:

* the config check (`desed_task.config.validate_config`): the ``net:`` keys, their types, allowed
  values and bounds, and ``data.net_subsample`` against `NetworkContract.time_pooling`;
* the factory (`desed_task.nnet.factory`): `NetworkContract.build`, and whether the network may
  be fine-tuned on separated sources (`NetworkContract.separable`);
* training and inference: whether it is fed the clips' embeddings (`NetworkContract.takes_embeddings`);
* export (`desed_task.export`): whether it exports to ONNX and the copy it exports
  (`NetworkContract.for_export`).

Adding a network: write its module (``(batch, n_mels, frames)`` scaled log-mels -> strong
(batch, classes, frames // time pooling) and weak (batch, classes) probabilities, an attribute
``time_pooling``), then `register_network` its contract (the built-in ones in
``desed_task/nnet/__init__.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import nn

DEFAULT_NETWORK = "crnn"
"""``net.type`` when unset: the 2021 CRNN (every config and checkpoint written before the key)."""


class NetKey(NamedTuple):
    """One ``net:`` key of a network.

    Attributes:
        spec: its type, in the config's spec language (`desed_task.config`): a type, a tuple of
            accepted types (``type(None)``: nullable) or ``("list", item_spec)``.
        allowed: the values it may take (None: any of its type).
        bounds: (lowest, highest) for a number or each number of a list; None: unbounded.
    """

    spec: Any
    allowed: tuple | None = None
    bounds: tuple[Any, Any] | None = None


def _never(net: dict) -> bool:
    return False


def _same(network: nn.Module, n_tokens: int, n_frames: int) -> nn.Module:
    return network


@dataclass(frozen=True)
class NetworkContract:
    """What a network of ``net.type: <name>`` is built from and what it needs.

    Attributes:
        name: its ``net.type``.
        build: ``build(**net)`` with the ``net:`` section less ``type`` -> the untrained
            network. Called on the features as ``network(x)``, or ``network(x, embeddings=e)``
            when it `takes_embeddings`; x is (batch, n_mels, frames) scaled log-mels; returns
            strong (batch, classes, frames // time pooling) and weak (batch, classes)
            probabilities. Building may draw from the global torch generator (the seeded
            initialisation); nothing else here does.
        keys: its ``net:`` keys (``type`` aside) and their `NetKey`; a key not listed is refused
            by the config check.
        time_pooling: ``net:`` section -> input frames per output frame, without building the
            network (the config's ``data.net_subsample`` must equal it).
        time_pooling_keys: the ``net:`` keys whose time factors multiply into it (named when
            ``data.net_subsample`` differs).
        takes_embeddings: ``net:`` section -> whether the network also takes the clips'
            pretrained (BEATs) embeddings, (batch, dim, tokens) frame or (batch, dim) global
            ones: training reads the extracted files, inference and export run BEATs.
        separable: it may be fine-tuned on separated sources (SSEP + SED): two copies of it in
            `desed_task.nnet.ensemble.SeparatedEnsemble` (not with embeddings).
        onnx: it exports to ONNX (``python -m desed_task.export``).
        for_export: for a network that `takes_embeddings`: ``(network, n_tokens, n_frames)`` ->
            the network the exporter traces, for clips of exactly ``n_tokens`` embedding tokens
            and ``n_frames`` output frames (the CRNN fixes its token pooling to a matrix); may
            change the network in place, the exporter gives it a copy. Default: the network
            itself. A network fed the features alone is traced as it is.
        input_shape: what it is fed, in words (its documentation).
    """

    name: str
    build: Callable[..., nn.Module]
    keys: Mapping[str, NetKey]
    time_pooling: Callable[[dict], int]
    time_pooling_keys: tuple[str, ...] = ()
    takes_embeddings: Callable[[dict], bool] = _never
    separable: bool = False
    onnx: bool = True
    for_export: Callable[[nn.Module, int, int], nn.Module] = _same
    input_shape: str = "(batch, n_mels, frames) scaled log-mels"
    defaults: Mapping[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        parameters = inspect.signature(self.build).parameters
        defaults = {k: parameters[k].default for k in self.keys
                    if k in parameters and parameters[k].default is not inspect.Parameter.empty}
        object.__setattr__(self, "defaults", defaults)


_NETWORKS: dict[str, NetworkContract] = {}


def register_network(contract: NetworkContract) -> NetworkContract:
    """Make ``net.type: <contract.name>`` a network configs may name.

    Raises:
        ValueError: another contract holds the name.
    """
    if _NETWORKS.get(contract.name, contract) is not contract:
        raise ValueError(f"net.type {contract.name!r} is registered already")
    _NETWORKS[contract.name] = contract
    return contract


def unregister_network(name: str) -> None:
    """Forget a registered network (tests that register their own)."""
    _NETWORKS.pop(name, None)


def network_types() -> tuple[str, ...]:
    """The ``net.type`` values configs may take, in registration order."""
    return tuple(_NETWORKS)


def network_type(net: dict) -> str:
    """A ``net:`` section's ``net.type`` (``crnn`` when unset)."""
    return net.get("type") or DEFAULT_NETWORK


def network_contract(net: dict | str) -> NetworkContract:
    """The contract of a ``net:`` section (or of a ``net.type``).

    Raises:
        KeyError: no network of that type is registered (the config check refuses it first).
    """
    name = net if isinstance(net, str) else network_type(net)
    if name not in _NETWORKS:
        raise KeyError(f"net.type must be one of {', '.join(_NETWORKS)}, got {name!r}")
    return _NETWORKS[name]


def network_arguments(net: dict) -> dict:
    """The ``net:`` section as `NetworkContract.build` takes it: without ``type``."""
    return {k: v for k, v in net.items() if k != "type"}
