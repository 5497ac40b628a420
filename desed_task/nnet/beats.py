"""BEATs (Chen et al. 2022, "Audio Pre-Training with Acoustic Tokenizers"), the frozen encoder
of the DCASE 2023 Task 4 pretrained-embedding baseline.

Our own implementation of what the 2023 recipe ran (``local/beats/``, a copy of microsoft/unilm's
BEATs), checkpoint-compatible with it: :func:`load_beats` reads the official files
(``{"cfg": {...}, "model": state_dict}``, e.g. ``BEATs_iter3_plus_AS2M.pt``), pre-trained or
fine-tuned, with every switch of the official config. Differences that do not change numbers:

- the positional convolution's weight norm (``weight_g``/``weight_v``) is folded into a plain
  weight at load time, so the module has no weight-norm parametrisation;
- attention runs as one ``scaled_dot_product_attention`` with the (gated) relative position
  bias as an additive mask; the official code's "subtract the row maximum, scale by 32" is a
  softmax-invariant rewrite of the same thing;
- no padding mask: the 2023 recipe never passed one (every clip is padded to 10 s);
- on a GPU its convolutions run in full float32 (PyTorch lets cuDNN use TF32 by default), so
  that embeddings extracted on a GPU equal those of the CPU.

Shapes: waveform (batch, samples) at 16 kHz in [-1, 1] -> tokens (batch, n_tokens, dim), with
n_tokens = (fbank frames // 16) * (128 // 16) (496 for 10 s), time-major (token t * 8 + f).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from desed_task.checkpoints import CheckpointError
from desed_task.features.kaldi import KaldiFbank

log = logging.getLogger(__name__)

# the official preprocess: Kaldi fbank of the waveform scaled to 16-bit range, standardised
# with these AudioSet statistics and divided by 2 std (BEATs.preprocess, 2023 recipe)
FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
WAVEFORM_SCALE = 2**15
SAMPLE_RATE = 16000
N_MEL_BINS = 128

ACTIVATIONS = ("relu", "gelu", "gelu_fast", "gelu_accurate", "tanh", "linear", "glu")


class BEATsCheckpointError(CheckpointError):
    """A file is not a usable BEATs checkpoint; the message names the file and what is wrong."""


@dataclasses.dataclass
class BEATsConfig:
    """The official ``BEATsConfig`` fields and defaults (a checkpoint's ``cfg`` overrides them)."""

    input_patch_size: int = -1
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_wise_gradient_decay_ratio: float = 1.0
    layer_norm_first: bool = False
    deep_norm: bool = False
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False
    finetuned_model: bool = False
    predictor_dropout: float = 0.1
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict, source: str = "<cfg>") -> BEATsConfig:
        """Check a checkpoint's ``cfg``: known keys must have the field's type; unknown keys are
        ignored (the official class stored them as unused attributes).

        Raises:
            ValueError: naming the key, when a value has the wrong type or the combination is
                impossible.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - set(fields))
        if unknown:
            log.info("%s: ignoring cfg keys BEATs does not use: %s", source, unknown)
        values = {}
        for name, value in cfg.items():
            if name not in fields:
                continue
            kind = fields[name].type
            ok = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                "bool": isinstance(value, bool),
                "str": isinstance(value, str),
            }[kind]
            if not ok:
                raise ValueError(f"cfg key {name!r} must be {kind}, got {type(value).__name__} {value!r}")
            values[name] = float(value) if kind == "float" else value
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """Raise ValueError on settings the official model could not build."""
        if self.input_patch_size < 1:
            raise ValueError(f"cfg 'input_patch_size' must be a positive int, got {self.input_patch_size}")
        if self.deep_norm and self.layer_norm_first:
            raise ValueError("cfg 'deep_norm' and 'layer_norm_first' cannot both be true")
        if self.activation_fn not in ACTIVATIONS:
            raise ValueError(f"cfg 'activation_fn' must be one of {ACTIVATIONS}, got {self.activation_fn!r}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError("cfg 'encoder_embed_dim' must be a multiple of 'encoder_attention_heads'")
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise ValueError("cfg 'encoder_embed_dim' must be a multiple of 'conv_pos_groups'")
        for name in ("embed_dim", "encoder_layers", "encoder_ffn_embed_dim", "conv_pos", "predictor_class"):
            if getattr(self, name) < 1:
                raise ValueError(f"cfg {name!r} must be positive, got {getattr(self, name)}")
        if self.relative_position_embedding and (self.num_buckets < 4 or self.max_distance < 1):
            raise ValueError("cfg 'num_buckets' must be >= 4 and 'max_distance' >= 1")


# ------------------------------------------------------------------------------------- helpers
def _activation(name: str):
    if name == "relu":
        return F.relu
    if name == "gelu":
        return lambda x: F.gelu(x.float()).type_as(x)
    if name in ("gelu_fast", "gelu_accurate"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "tanh":
        return torch.tanh
    return lambda x: x  # "linear", and "glu" whose gate lives in fc1


class _GradientScale(torch.autograd.Function):
    """Identity forward, gradient times ``scale`` (fairseq's GradMultiply)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


class GLULinear(nn.Module):
    """Linear to 2 * out, first half gated by swish of the second (``activation_fn: glu``).
    Its weights are ``fc1.linear.*`` as in the official files."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.n_out = n_out
        self.linear = nn.Linear(n_in, 2 * n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.linear(x).split(self.n_out, dim=-1)
        return value * F.silu(gate)


def relative_position_buckets(
    n_queries: int, n_keys: int, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """T5-style bidirectional buckets of key - query offsets, as BEATs computes them.

    Half the buckets per direction; offsets below a quarter of ``num_buckets`` get their own
    bucket, larger ones share logarithmically wider buckets up to ``max_distance``.

    Returns:
        (n_queries, n_keys) int64 bucket indices in [0, num_buckets).
    """
    offsets = torch.arange(n_keys)[None, :] - torch.arange(n_queries)[:, None]
    half = num_buckets // 2
    buckets = (offsets > 0).long() * half
    distance = offsets.abs()
    max_exact = half // 2
    # clamp keeps log() finite where the exact branch is taken anyway
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (half - max_exact)).long()
    large = large.clamp(max=half - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


def _full_float32_convolutions(x: torch.Tensor):
    """PyTorch lets cuDNN run float32 convolutions in TF32 (10-bit mantissa) by default; the
    patch and positional convolutions run in full float32 here so that GPU embeddings equal CPU
    ones (matmuls are full float32 by default). A no-op on the CPU."""
    if not x.is_cuda:
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


# ------------------------------------------------------------------------------------- modules
class MultiheadSelfAttention(nn.Module):
    """BEATs self-attention with optional (gated) relative position bias.

    Parameter names follow the official files: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``,
    ``relative_attention_bias`` (an embedding bucket -> per-head bias), ``grep_linear`` and
    ``grep_a`` (the gate of ``gru_rel_pos``).
    """

    def __init__(self, config: BEATsConfig, has_relative_bias: bool):
        super().__init__()
        dim, heads = config.encoder_embed_dim, config.encoder_attention_heads
        self.num_heads = heads
        self.head_dim = dim // heads
        self.dropout = config.attention_dropout
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, heads)
        self.gru_rel_pos = config.gru_rel_pos
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, tokens, dim); position_bias: (heads, tokens, tokens) or None."""
        batch, length, dim = x.shape
        q, k, v = (self._heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        mask = None
        if position_bias is not None:
            mask = position_bias[None]
            if self.gru_rel_pos:
                # the gate reads the unscaled query of each head
                gates = torch.sigmoid(self.grep_linear(q).view(batch, self.num_heads, length, 2, 4).sum(-1))
                gate_a, gate_b = gates[..., :1], gates[..., 1:]
                mask = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * mask
        attention = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(attention.transpose(1, 2).reshape(batch, length, dim))


class EncoderLayer(nn.Module):
    """One transformer layer: post-norm (optionally DeepNorm-scaled residuals) or pre-norm."""

    def __init__(self, config: BEATsConfig, has_relative_bias: bool):
        super().__init__()
        dim = config.encoder_embed_dim
        self.self_attn = MultiheadSelfAttention(config, has_relative_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        if config.activation_fn == "glu":
            self.fc1 = GLULinear(dim, config.encoder_ffn_embed_dim)
        else:
            self.fc1 = nn.Linear(dim, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.activation = _activation(config.activation_fn)
        self.dropout = nn.Dropout(config.dropout)
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.layer_norm_first = config.layer_norm_first
        self.residual_scale = math.pow(2 * config.encoder_layers, 0.25) if config.deep_norm else 1.0

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation_dropout(self.activation(self.fc1(x)))
        return self.dropout(self.fc2(x))

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), position_bias))
            return x + self._feed_forward(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x * self.residual_scale + self.dropout(self.self_attn(x, position_bias)))
        return self.final_layer_norm(x * self.residual_scale + self._feed_forward(x))


class TransformerEncoder(nn.Module):
    """Convolutional positional embedding, then the layers. The relative position bias table
    lives in layer 0 and is shared by every layer (each gates it with its own query)."""

    def __init__(self, config: BEATsConfig):
        super().__init__()
        dim = config.encoder_embed_dim
        self.pos_conv = nn.Conv1d(
            dim, dim, kernel_size=config.conv_pos, padding=config.conv_pos // 2, groups=config.conv_pos_groups
        )
        # an even kernel with padding k // 2 gives one frame too many: drop the last (SamePad)
        self.pos_conv_trim = 1 if config.conv_pos % 2 == 0 else 0
        self.relative_position_embedding = config.relative_position_embedding
        self.num_buckets, self.max_distance = config.num_buckets, config.max_distance
        self.layers = nn.ModuleList(
            EncoderLayer(config, has_relative_bias=self.relative_position_embedding and i == 0)
            for i in range(config.encoder_layers)
        )
        if self.relative_position_embedding:
            # shared, as the official model; the state dict lists it under every layer
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = config.layer_norm_first
        self.dropout = nn.Dropout(config.dropout)
        self.layerdrop = config.encoder_layerdrop
        self.gradient_decay = config.layer_wise_gradient_decay_ratio

    def position_bias(self, n_tokens: int) -> torch.Tensor | None:
        """(heads, tokens, tokens) bias from the shared bucket table, or None."""
        if not self.relative_position_embedding:
            return None
        table = self.layers[0].self_attn.relative_attention_bias
        buckets = relative_position_buckets(n_tokens, n_tokens, self.num_buckets, self.max_distance)
        return table(buckets.to(table.weight.device)).permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.pos_conv(x.transpose(1, 2))
        if self.pos_conv_trim:
            conv = conv[..., : -self.pos_conv_trim]
        x = x + F.gelu(conv).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        bias = self.position_bias(x.shape[1])
        for layer in self.layers:
            if self.gradient_decay != 1.0 and torch.is_grad_enabled():
                x = _GradientScale.apply(x, self.gradient_decay)
            if self.training and self.layerdrop > 0 and torch.rand(()).item() < self.layerdrop:
                continue
            x = layer(x, bias)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x


class BEATs(nn.Module):
    """BEATs encoder with its fbank front end; optional AudioSet predictor of fine-tuned models.

    Args:
        config: the checkpoint's (checked) config.

    Shapes:
        forward: waveform (batch, samples) at 16 kHz in [-1, 1] -> (batch, tokens, dim).
    """

    def __init__(self, config: BEATsConfig):
        super().__init__()
        config.check()
        self.config = config
        self.fbank = KaldiFbank(num_mel_bins=N_MEL_BINS, sample_frequency=SAMPLE_RATE, frame_length=25, frame_shift=10)
        self.patch_embedding = nn.Conv2d(
            1, config.embed_dim, kernel_size=config.input_patch_size, stride=config.input_patch_size,
            bias=config.conv_bias,
        )
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.post_extract_proj = (
            nn.Linear(config.embed_dim, config.encoder_embed_dim)
            if config.embed_dim != config.encoder_embed_dim
            else None
        )
        self.dropout_input = nn.Dropout(config.dropout_input)
        self.encoder = TransformerEncoder(config)
        if config.finetuned_model:
            self.predictor_dropout = nn.Dropout(config.predictor_dropout)
            self.predictor = nn.Linear(config.encoder_embed_dim, config.predictor_class)
        else:
            self.predictor = None

    @property
    def embedding_dim(self) -> int:
        return self.config.encoder_embed_dim

    def n_tokens(self, n_samples: int) -> int:
        """Tokens for a clip of ``n_samples`` samples (496 for 10 s)."""
        patch = self.config.input_patch_size
        return (self.fbank.n_frames(n_samples) // patch) * (N_MEL_BINS // patch)

    def preprocess(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) in [-1, 1] -> normalised fbank (batch, frames, 128), as BEATs.preprocess."""
        fbank = self.fbank(waveform * WAVEFORM_SCALE)
        return (fbank - FBANK_MEAN) / (2 * FBANK_STD)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with _full_float32_convolutions(waveform):
            fbank = self.preprocess(waveform)
            patches = self.patch_embedding(fbank[:, None])  # (batch, embed, time / p, 128 / p)
            tokens = self.layer_norm(patches.flatten(2).transpose(1, 2))
            if self.post_extract_proj is not None:
                tokens = self.post_extract_proj(tokens)
            return self.encoder(self.dropout_input(tokens))

    def clip_probabilities(self, waveform: torch.Tensor) -> torch.Tensor:
        """Fine-tuned models only: (batch, predictor_class) sigmoid of the token-mean logits."""
        if self.predictor is None:
            raise RuntimeError("clip_probabilities needs a fine-tuned BEATs (cfg finetuned_model: true)")
        logits = self.predictor(self.predictor_dropout(self(waveform)))
        return torch.sigmoid(logits.mean(dim=1))

    def embeddings(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        """The 2023 recipe's ``BEATsModel`` outputs: ``frame`` (batch, dim, tokens) and
        ``global`` (batch, dim), the mean over tokens, float32."""
        tokens = self(waveform)
        return {"global": tokens.mean(dim=1).float(), "frame": tokens.transpose(1, 2).float()}


# ------------------------------------------------------------------------------------- loading
def _fold_weight_norm(state: dict, prefix: str) -> None:
    """Replace ``prefix.weight_g`` / ``prefix.weight_v`` by ``prefix.weight`` = g * v / ||v||,
    the norm taken over all axes but 2 (``weight_norm(dim=2)``)."""
    g, v = state.pop(f"{prefix}.weight_g"), state.pop(f"{prefix}.weight_v")
    norm = v.norm(dim=(0, 1), keepdim=True)
    state[f"{prefix}.weight"] = v * (g / norm)


def read_beats_checkpoint(path: str | Path) -> tuple[BEATsConfig, dict[str, torch.Tensor]]:
    """Read an official BEATs file without running pickled code; returns its checked config and
    its state dict in this module's names (positional weight norm folded).

    Raises:
        BEATsCheckpointError: naming the file and what is wrong (missing, truncated, not a BEATs
            checkpoint, bad cfg).
    """
    path = Path(path)
    if not path.is_file():
        raise BEATsCheckpointError(f"{path}: BEATs checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise BEATsCheckpointError(
            f"{path}: not a torch checkpoint (not a zip archive: truncated, or another kind of file) - "
            "download BEATs_iter3_plus_AS2M.pt again"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is long; its line naming the refused class is what matters
        lines = [line.strip() for line in str(err).splitlines() if "Unsupported global" in line]
        raise BEATsCheckpointError(
            f"{path}: cannot be loaded safely (weights_only=True): "
            f"{lines[0] if lines else 'it holds pickled objects'}; a BEATs checkpoint holds only a "
            "cfg dict and tensors"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BEATsCheckpointError(
            f"{path}: not a readable torch file ({reason[:200]}); it is truncated or not a checkpoint - "
            "download BEATs_iter3_plus_AS2M.pt again"
        ) from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("cfg"), dict) \
            or not isinstance(checkpoint.get("model"), dict):
        found = sorted(checkpoint)[:6] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise BEATsCheckpointError(
            f"{path}: not a BEATs checkpoint (expected a dict with 'cfg' and 'model', found {found})"
        )
    try:
        config = BEATsConfig.from_dict(checkpoint["cfg"], str(path))
    except ValueError as err:
        raise BEATsCheckpointError(f"{path}: {err}") from err
    state = dict(checkpoint["model"])
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BEATsCheckpointError(f"{path}: 'model' must map names to tensors")
    prefix = "encoder.pos_conv.0"
    if f"{prefix}.weight_g" in state and f"{prefix}.weight_v" in state:
        _fold_weight_norm(state, prefix)
    if f"{prefix}.weight" in state:
        state["encoder.pos_conv.weight"] = state.pop(f"{prefix}.weight")
    if f"{prefix}.bias" in state:
        state["encoder.pos_conv.bias"] = state.pop(f"{prefix}.bias")
    return config, state


def load_beats(path: str | Path) -> BEATs:
    """A BEATs model with the weights of an official checkpoint, in eval mode.

    Raises:
        BEATsCheckpointError: the file is not a BEATs checkpoint or its weights do not match its
            cfg (missing, unexpected or misshapen tensors are named).
    """
    config, state = read_beats_checkpoint(path)
    model = BEATs(config)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or misshapen:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} weights, e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}")
        if misshapen:
            k = misshapen[0]
            parts.append(f"{k} has shape {tuple(state[k].shape)}, the cfg gives {tuple(own[k].shape)}")
        raise BEATsCheckpointError(f"{path}: its weights do not match its cfg ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)
    return model.eval()


def describe(config: BEATsConfig) -> dict[str, Any]:
    """The config as a plain dict (the official ``cfg`` layout)."""
    return dataclasses.asdict(config)
