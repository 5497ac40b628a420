"""The 2021 baseline CRNN: CNN front end, bidirectional GRU, frame and attention-pooled clip heads;
with ``use_embeddings`` the 2023 one, pretrained embeddings fused before the GRU.

Its contract (`CRNN_CONTRACT`, ``net.type: crnn``, the default) lists the ``net:`` keys a config
may give it; build it from a config's ``net:`` section with ``desed_task.nnet.build_network``.
Parameter names follow the official layout, so official checkpoints (the ``sed_student.`` /
``sed_teacher.`` sub-dicts) load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .CNN import CNN, cnn_time_pooling
from .registry import NetKey, NetworkContract
from .RNN import BidirectionalGRU

# the 2021 sed.yaml ``net:`` section, used as defaults so that ``CRNN()`` is the baseline
DEFAULT_KERNEL_SIZE = (3, 3, 3, 3, 3, 3, 3)
DEFAULT_PADDING = (1, 1, 1, 1, 1, 1, 1)
DEFAULT_STRIDE = (1, 1, 1, 1, 1, 1, 1)
DEFAULT_NB_FILTERS = (16, 32, 64, 128, 128, 128, 128)
DEFAULT_POOLING = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2))
DEFAULT_RNN_LAYERS = 2

SUPPORTED_RNN_TYPES = ("BGRU",)
EMBEDDING_TYPES = ("global", "frame")
"""Values of ``net.embedding_type`` (2023): which extracted embeddings the CRNN reads."""
AGGREGATION_TYPES = ("pool1d", "interpolate", "frame", "global")
"""Values of ``net.aggregation_type`` (2023): how embeddings meet the CNN frames."""


class CRNN(nn.Module):
    """Convolutional recurrent network for sound event detection (DCASE 2021 Task 4 baseline).

    Args:
        n_in_channel: input channels (1: one log-mel spectrogram).
        nclass: number of event classes.
        attention: clip-level output by attention pooling over frames (2021 default) instead
            of the mean over frames.
        activation: CNN activation, "glu" | "cg" | "relu" | "leakyrelu".
        dropout: dropout after each CNN block and before the dense heads.
        train_cnn: if False the CNN parameters are not trained.
        rnn_type: only "BGRU" (bidirectional GRU) exists.
        n_RNN_cell: GRU hidden units per direction.
        n_layers_RNN: number of GRU layers (name of the 2021 Python argument).
        rnn_layers: number of GRU layers (name of the 2021 yaml key, which 2021 silently
            ignored; its value there, 2, equals the default). Give one or the other; if both
            are given they must agree.
        dropout_recurrent: dropout between GRU layers.
        cnn_integration: with several input channels, run each channel through the CNN
            separately and concatenate their features before the GRU.
        kernel_size, padding, stride, nb_filters, pooling, batch_norm: CNN blocks, see
            :class:`desed_task.nnet.CNN.CNN`. The pooling must reduce the frequency axis to 1.
        frozen_batchnorm: freeze the batch-norm layers at construction, see
            :meth:`freeze_batchnorm`.
        uniform_dropout: CNN dropout masks drawn with `uniform_` (faster on the CPU, other
            random numbers); False (2021): `nn.Dropout`.
        use_embeddings: fuse pretrained (BEATs) embeddings into the CNN features before the
            GRU, the DCASE 2023 baseline (``confs/pretrained.yaml``). False: the 2021 CRNN.
        embedding_size: channels of the embeddings (768 for BEATs iter3).
        embedding_type: "frame" (batch, embedding_size, tokens) or "global"
            (batch, embedding_size) embeddings, as read from the extracted files.
        aggregation_type: how frame embeddings meet the CNN frames, 2023 names: "pool1d"
            (adaptive average pooling of the tokens to the CNN frames, the 2023 default),
            "interpolate" (nearest-exact resampling of the tokens), "frame" (the last output of
            a bidirectional GRU over the tokens, repeated over frames); "global" takes global
            embeddings, repeated over frames. Each is concatenated to the CNN features and
            projected back to their width by ``cat_tf``.
        frame_emb_enc_dim: hidden units per direction of the "frame" aggregation's GRU (2023:
            512, the only value its code could build).

    Raises:
        ValueError: on an unknown keyword or an unsupported value.

    Attributes:
        time_pooling: input frames per output frame (4 for the 2021 CRNN), which the config's
            ``data.net_subsample`` must equal (checked by the config check, `CRNN_CONTRACT`).

    Shapes:
        x: (batch, n_mels, frames) or (batch, n_in_channel, n_mels, frames), scaled log-mels.
        returns strong: (batch, nclass, frames_out) frame probabilities in [0, 1],
            frames_out = frames // prod(time pooling) (156 for 626 input frames);
            weak: (batch, nclass) clip probabilities.
    """

    def __init__(
        self,
        n_in_channel: int = 1,
        nclass: int = 10,
        attention: bool = True,
        activation: str = "glu",
        dropout: float = 0.5,
        train_cnn: bool = True,
        rnn_type: str = "BGRU",
        n_RNN_cell: int = 128,
        n_layers_RNN: int | None = None,
        rnn_layers: int | None = None,
        dropout_recurrent: float = 0.0,
        cnn_integration: bool = False,
        kernel_size: Sequence = DEFAULT_KERNEL_SIZE,
        padding: Sequence = DEFAULT_PADDING,
        stride: Sequence = DEFAULT_STRIDE,
        nb_filters: Sequence[int] = DEFAULT_NB_FILTERS,
        pooling: Sequence = DEFAULT_POOLING,
        batch_norm: bool = True,
        frozen_batchnorm: bool = False,
        uniform_dropout: bool = False,
        use_embeddings: bool = False,
        embedding_size: int = 768,
        embedding_type: str = "frame",
        aggregation_type: str = "pool1d",
        frame_emb_enc_dim: int = 512,
        **unknown: Any,
    ):
        super().__init__()
        # 2021 passed **kwargs on to the CNN, which swallowed any typo; we refuse them
        if unknown:
            raise ValueError(f"CRNN: unknown config key(s) {sorted(unknown)}")
        if rnn_type not in SUPPORTED_RNN_TYPES:
            raise ValueError(
                f"CRNN: unsupported rnn_type {rnn_type!r}; expected one of {SUPPORTED_RNN_TYPES}"
            )
        n_rnn_layers = _resolve_rnn_layers(n_layers_RNN, rnn_layers)

        self.n_in_channel = n_in_channel
        self.attention = attention
        self.cnn_integration = cnn_integration
        self.train_cnn = train_cnn

        self.cnn = CNN(
            n_in_channel=1 if cnn_integration else n_in_channel,
            activation=activation,
            conv_dropout=dropout,
            kernel_size=kernel_size,
            padding=padding,
            stride=stride,
            nb_filters=nb_filters,
            pooling=pooling,
            batch_norm=batch_norm,
            uniform_dropout=uniform_dropout,
        )
        if not train_cnn:
            self.cnn.requires_grad_(False)
        self.time_pooling = self.cnn.time_pooling  # input frames per output frame

        n_rnn_in = nb_filters[-1] * (n_in_channel if cnn_integration else 1)
        self.rnn = BidirectionalGRU(
            n_in=n_rnn_in,
            n_hidden=n_RNN_cell,
            dropout=dropout_recurrent,
            num_layers=n_rnn_layers,
        )
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * n_RNN_cell, nclass)
        if attention:
            self.dense_softmax = nn.Linear(2 * n_RNN_cell, nclass)

        self.use_embeddings = use_embeddings
        if use_embeddings:
            self._build_fusion(n_rnn_in, embedding_size, embedding_type, aggregation_type, frame_emb_enc_dim)

        self.frozen_batchnorm = False
        if frozen_batchnorm:
            self.freeze_batchnorm()

    def _build_fusion(
        self, n_feat: int, embedding_size: int, embedding_type: str, aggregation_type: str, enc_dim: int
    ) -> None:
        """The 2023 layers (official names): ``cat_tf`` projects [CNN features, embeddings]
        back to ``n_feat``; "global"/"frame" first shrink the embedding to ``n_feat``."""
        if embedding_type not in EMBEDDING_TYPES:
            raise ValueError(f"CRNN: embedding_type must be one of {EMBEDDING_TYPES}, got {embedding_type!r}")
        if aggregation_type not in AGGREGATION_TYPES:
            # 2023 built an unused layer and silently ignored the embeddings
            raise ValueError(
                f"CRNN: aggregation_type must be one of {AGGREGATION_TYPES}, got {aggregation_type!r}"
            )
        if (aggregation_type == "global") != (embedding_type == "global"):
            raise ValueError(
                f"CRNN: aggregation_type {aggregation_type!r} needs embedding_type "
                f"{'global' if aggregation_type == 'global' else 'frame'}, got {embedding_type!r}"
            )
        self.embedding_type, self.aggregation_type = embedding_type, aggregation_type
        self.register_buffer("token_pooling", None, persistent=False)  # see fix_token_pooling
        if aggregation_type == "frame":
            self.frame_embs_encoder = nn.GRU(
                input_size=embedding_size, hidden_size=enc_dim, batch_first=True, bidirectional=True
            )
            embedding_size = 2 * enc_dim
        if aggregation_type in ("frame", "global"):
            self.shrink_emb = nn.Sequential(nn.Linear(embedding_size, n_feat), nn.LayerNorm(n_feat))
            embedding_size = n_feat
        self.cat_tf = nn.Linear(n_feat + embedding_size, n_feat)

    def _fuse(self, x: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """CNN features (batch, frames, n_feat) with the embeddings -> (batch, frames, n_feat)."""
        n_frames = x.shape[1]
        if self.token_pooling is not None and self.aggregation_type in TOKEN_MATRICES:
            per_frame = torch.matmul(embeddings, self.token_pooling.T).transpose(1, 2)
        elif self.aggregation_type == "pool1d":
            per_frame = F.adaptive_avg_pool1d(embeddings, n_frames).transpose(1, 2)
        elif self.aggregation_type == "interpolate":
            per_frame = F.interpolate(embeddings, size=n_frames, mode="nearest-exact").transpose(1, 2)
        else:
            if self.aggregation_type == "frame":
                # 2023: the GRU's output at the last token (the tokens and CNN frames differ in number)
                embeddings = self.frame_embs_encoder(embeddings.transpose(1, 2))[0][:, -1]
            per_frame = self.shrink_emb(embeddings)[:, None].expand(-1, n_frames, -1)
        return self.cat_tf(torch.cat((x, per_frame), dim=-1))

    def fix_token_pooling(self, n_tokens: int, n_frames: int) -> CRNN:
        """Map the tokens to the frames (``aggregation_type`` pool1d or interpolate) by a fixed
        matrix instead of ``adaptive_avg_pool1d`` / nearest-exact ``interpolate``: the same
        averages (`adaptive_average_matrix`) or the same picked tokens (`nearest_exact_matrix`),
        for inputs of exactly ``n_tokens`` tokens and ``n_frames`` CNN frames. For the ONNX
        exporter, which cannot write adaptive pooling of sizes that do not divide (496 tokens ->
        156 frames) nor nearest-exact resampling (opset 17). Other aggregations: no change."""
        if self.use_embeddings and self.aggregation_type in TOKEN_MATRICES:
            matrix = TOKEN_MATRICES[self.aggregation_type](n_tokens, n_frames)
            self.token_pooling = matrix.to(self.cat_tf.weight.device, self.cat_tf.weight.dtype)
        return self

    # ------------------------------------------------------------------ batch norm freezing
    def _batchnorm_layers(self) -> list[nn.modules.batchnorm._BatchNorm]:
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def freeze_batchnorm(self) -> CRNN:
        """Keep every batch-norm layer in eval mode and stop training its affine parameters.

        Used when fine-tuning on separated sources: the running statistics and the
        scale/shift learnt on mixtures are kept. Survives later ``.train()`` calls.
        """
        self.frozen_batchnorm = True
        for layer in self._batchnorm_layers():
            layer.requires_grad_(False)
            layer.eval()
        return self

    def unfreeze_batchnorm(self) -> CRNN:
        """Undo :meth:`freeze_batchnorm` (the CNN stays frozen if ``train_cnn`` is False)."""
        self.frozen_batchnorm = False
        for layer in self._batchnorm_layers():
            layer.requires_grad_(self.train_cnn)
            layer.train(self.training)
        return self

    def train(self, mode: bool = True) -> CRNN:
        super().train(mode)
        if self.frozen_batchnorm:
            for layer in self._batchnorm_layers():
                layer.eval()
        return self

    # ------------------------------------------------------------------------------ forward
    def forward(
        self,
        x: torch.Tensor,
        pad_mask: torch.Tensor | None = None,
        embeddings: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame and clip probabilities.

        Args:
            x: (batch, n_mels, frames) or (batch, n_in_channel, n_mels, frames).
            pad_mask: optional bool mask, True on padded output frames, shape
                (batch, 1 | nclass, frames_out). As in 2021 it sets the attention logits of
                those frames to -1e30 before the softmax over classes.
            embeddings: with ``use_embeddings`` only: (batch, embedding_size, tokens) frame
                embeddings or (batch, embedding_size) global ones.

        Returns:
            strong (batch, nclass, frames_out), weak (batch, nclass).
        """
        if self.use_embeddings and embeddings is None:
            raise ValueError("CRNN: built with use_embeddings: true, the forward needs embeddings=")
        if x.dim() == 3:
            x = x.unsqueeze(1)
        # the CNN wants time before frequency: (batch, channels, frames, n_mels)
        x = x.transpose(-1, -2)
        batch, n_channels = x.shape[:2]
        if self.cnn_integration:
            x = x.reshape(batch * n_channels, 1, *x.shape[2:])

        x = self.cnn(x)
        _, n_feat, n_frames, n_freq = x.shape
        if n_freq != 1:
            raise ValueError(
                f"CRNN: the CNN leaves {n_freq} frequency bins; the frequency pooling must "
                "reduce the mel axis to 1"
            )
        if self.cnn_integration:
            n_feat *= n_channels
        x = x.reshape(batch, n_feat, n_frames).transpose(1, 2)  # (batch, frames, features)
        if self.use_embeddings:
            x = self._fuse(x, embeddings)

        x = self.rnn(x)
        x = self.dropout(x)
        strong = torch.sigmoid(self.dense(x))  # (batch, frames, nclass)
        if self.attention:
            logits = self.dense_softmax(x)
            if pad_mask is not None:
                logits = logits.masked_fill(pad_mask.transpose(1, 2), -1e30)
            # softmax over *classes* (dim -1) as in 2021, then weights normalised over frames
            weights = torch.softmax(logits, dim=-1).clamp(min=1e-7, max=1)
            weak = (strong * weights).sum(1) / weights.sum(1)
        else:
            weak = strong.mean(1)
        return strong.transpose(1, 2), weak


def adaptive_average_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) float32 matrix M with ``x @ M.T == adaptive_avg_pool1d(x, n_out)`` for x of
    n_in steps: row i averages steps floor(i n_in / n_out) to ceil((i + 1) n_in / n_out) - 1,
    PyTorch's bins."""
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix.float()


def nearest_exact_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) float32 0/1 matrix M with ``x @ M.T == interpolate(x, n_out,
    mode="nearest-exact")`` for x of n_in steps: row i picks step floor((i + 0.5) n_in / n_out),
    in float32 as PyTorch computes it (496 -> 156: row 19 picks 62, not the exact 61)."""
    matrix = torch.zeros(n_out, n_in)
    scale = torch.tensor(n_in, dtype=torch.float32) / n_out
    picked = torch.clamp(((torch.arange(n_out, dtype=torch.float32) + 0.5) * scale).floor().long(), max=n_in - 1)
    matrix[torch.arange(n_out), picked] = 1.0
    return matrix


TOKEN_MATRICES = {"pool1d": adaptive_average_matrix, "interpolate": nearest_exact_matrix}


def _resolve_rnn_layers(n_layers_RNN: int | None, rnn_layers: int | None) -> int:
    if n_layers_RNN is not None and rnn_layers is not None and n_layers_RNN != rnn_layers:
        raise ValueError(
            f"CRNN: n_layers_RNN={n_layers_RNN} and rnn_layers={rnn_layers} disagree; "
            "they name the same setting, give one"
        )
    n_layers = next((v for v in (n_layers_RNN, rnn_layers) if v is not None), DEFAULT_RNN_LAYERS)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"CRNN: the number of GRU layers must be a positive int, got {n_layers!r}")
    return n_layers


def crnn_time_pooling(net: dict) -> int:
    """Input frames per output frame of the CRNN of a ``net:`` section, unbuilt (4 in 2021)."""
    return cnn_time_pooling(net.get("pooling", DEFAULT_POOLING), net.get("stride", DEFAULT_STRIDE))


def crnn_takes_embeddings(net: dict) -> bool:
    """``net.use_embeddings``: the 2023 CRNN, fed BEATs embeddings too."""
    return bool(net.get("use_embeddings"))


def crnn_for_export(network: CRNN, n_tokens: int, n_frames: int) -> CRNN:
    """The CRNN with its token pooling fixed to a matrix (`CRNN.fix_token_pooling`)."""
    return network.fix_token_pooling(n_tokens, n_frames)


_NUM, _INT_LIST = (int, float), ("list", int)
CRNN_CONTRACT = NetworkContract(
    name="crnn",
    build=CRNN,
    keys={
        "dropout": NetKey(_NUM),
        "rnn_layers": NetKey(int),
        "n_in_channel": NetKey(int),
        "nclass": NetKey(int),
        "attention": NetKey(bool),
        "n_RNN_cell": NetKey(int),
        "activation": NetKey(str),
        "rnn_type": NetKey(str),
        "kernel_size": NetKey(_INT_LIST),
        "padding": NetKey(_INT_LIST),
        "stride": NetKey(_INT_LIST),
        "nb_filters": NetKey(_INT_LIST),
        "pooling": NetKey(("list", ("list", int))),
        "dropout_recurrent": NetKey(_NUM),
        "uniform_dropout": NetKey(bool),  # false (2021): nn.Dropout's bernoulli masks
        # the DCASE 2023 pretrained-embedding CRNN (confs/pretrained.yaml of 2023)
        "use_embeddings": NetKey(bool),
        "embedding_size": NetKey(int, bounds=(1, None)),
        "embedding_type": NetKey(str, allowed=EMBEDDING_TYPES),
        "aggregation_type": NetKey(str, allowed=AGGREGATION_TYPES),
        "frame_emb_enc_dim": NetKey(int, bounds=(1, None)),
    },
    time_pooling=crnn_time_pooling,
    time_pooling_keys=("pooling", "stride"),
    takes_embeddings=crnn_takes_embeddings,
    separable=True,
    onnx=True,
    for_export=crnn_for_export,
    input_shape="(batch, n_mels, frames) or (batch, n_in_channel, n_mels, frames) scaled log-mels; "
    "with use_embeddings also embeddings=(batch, embedding_size, tokens) or (batch, embedding_size)",
)
"""``net.type: crnn`` (the default): the 2021 CRNN, or with ``use_embeddings`` the 2023 one."""
