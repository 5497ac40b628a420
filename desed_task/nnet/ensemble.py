"""The SSEP + SED ensemble of the DCASE 2021 baseline (`EnsembleModel` of
finetune_on_separated.py), for fine-tuning a pre-trained SED model on separated sources.

Two copies of a pre-trained SED model:

* `multisrc_model`, fine-tuned: it sees each separated source on its own (batch * sources
  inputs); its strong and weak outputs are summed over the sources and clamped to 1;
* `monaural_model`, frozen (no gradient, not in the optimizer): it sees the mixture. As 2021
  (``CRNN(freeze_bn=True)`` deep-copied) only its batch norm is in eval mode: its dropout stays
  active in training (`mixture_dropout`; False puts the whole copy in eval mode).

Their outputs, both after the sigmoid, are averaged with a learned weight q:
``q * mixture_path + (1 - q) * separated_path``. Batch norm of the fine-tuned copy is frozen
(running statistics and affine weights), as the 2021 ``CRNN(freeze_bn=True)``.

Input layouts (`mixture_first`):

* False (default, the 2021 layout): input (batch, sources, ...). The 2021 datasets read the
  ``_sep`` folders only (one channel per source, no mixture channel); the trainer took the mel
  magnitude of each source, (batch, sources, n_mels, frames), and gave the frozen copy the SUM
  over sources of those mel magnitudes as "mixture" (the mixture's waveform is the sum of the
  sources by the separation model's mixture consistency, its mel is not the sum of theirs),
  then log + scaler on each. Here too: mixture = sum over the source axis, then `features` on
  each, unless an explicit mixture (batch, ...) is passed.
* True (what `MeanTeacher` feeds with separated sources): input (batch, 1 + sources, ...),
  channel 0 the mixture branch's input, channels 1.. the sources. One tensor, so the ensemble
  is called as any SED student: ``student(features)``. `MeanTeacher` fills channel 0 with the
  log-mel of the summed source mels (2021) or of the real mixture
  (``training.ensemble_mixture_input``).

q: as 2021, an unconstrained ``nn.Parameter(torch.rand(1))`` (seeded by the caller). With
`q_clamp` the weight applied is q clamped to [0, 1], with a straight-through gradient (the
gradient reaches q even when it sits beyond a bound, so it can come back). The parameter keeps
the 2021 name and meaning, so a 2021 fine-tuned state dict (keys ``multisrc_model.*``,
``monaural_model.*``, ``q``) loads as is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

SEDOutput = tuple[Tensor, Tensor]
"""(strong (batch, classes, frames) in [0, 1], weak (batch, classes) in [0, 1])."""


def freeze_batch_norm(model: nn.Module) -> None:
    """Put every batch norm layer of `model` in eval mode with fixed affine weights."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)


class SeparatedEnsemble(nn.Module):
    """SED on separated sources, ensembled with the frozen original SED model on the mixture.

    Args:
        mixture_model: the pre-trained SED model fed the mixture; frozen here.
        separated_model: the SED model to fine-tune on each source (usually a copy of the
            same pre-trained model: see `from_pretrained`); its batch norm is frozen here.
        features: turns one input (N, ...) into the SED model's input (N, n_mels, frames),
            applied to the batch * sources sources and to the mixture after the source sum
            (e.g. log + scaler when the inputs are mel magnitudes, as in 2021). Default
            identity. It is called, not owned: a module passed here is not registered (no
            state dict keys, not moved by `.to()`); its owner (the LightningModule) keeps it.
        q_init: initial q; None draws it uniformly in [0, 1) as 2021 did (``torch.rand``).
        mixture_first: the input is (batch, 1 + sources, ...) with the mixture at index 0
            (see the module docstring); False: (batch, sources, ...), the 2021 layout.
        mixture_dropout: the frozen mixture copy keeps its dropout active in train mode
            (2021); False: the whole copy stays in eval mode.
        q_clamp: apply q clamped to [0, 1]; False (2021): q as it is.

    Any SED model with the CRNN interface fits: ``forward(x (B, n_mels, T)) ->
    (strong (B, C, T'), weak (B, C))``, outputs after the sigmoid.
    """

    def __init__(
        self,
        mixture_model: nn.Module,
        separated_model: nn.Module,
        features: Callable[[Tensor], Tensor] | None = None,
        *,
        q_init: float | None = None,
        mixture_first: bool = False,
        mixture_dropout: bool = True,
        q_clamp: bool = False,
    ) -> None:
        super().__init__()
        self.mixture_first = mixture_first
        self.mixture_dropout = mixture_dropout
        self.q_clamp = q_clamp
        if mixture_model is separated_model:
            raise ValueError("give two copies of the SED model (see from_pretrained)")
        self.multisrc_model = separated_model  # 2021 name: fine-tuned on separated sources
        self.monaural_model = mixture_model  # 2021 name: frozen, fed the mixture
        initial = torch.rand(1) if q_init is None else torch.tensor([float(q_init)])
        self.q = nn.Parameter(initial)
        object.__setattr__(self, "features", features or (lambda x: x))  # not a submodule
        self.monaural_model.requires_grad_(False)
        self.train(self.training)

    @classmethod
    def from_pretrained(
        cls,
        sed_model: nn.Module,
        features: Callable[[Tensor], Tensor] | None = None,
        **options,
    ) -> SeparatedEnsemble:
        """Both copies from one pre-trained SED model (deep copies; `sed_model` untouched);
        `options` are the keyword arguments of the constructor."""
        return cls(copy.deepcopy(sed_model), copy.deepcopy(sed_model), features, **options)

    @property
    def mixture_weight(self) -> Tensor:
        """q as applied: q itself (2021), or with `q_clamp` clamped to [0, 1] with the
        gradient passed straight through to `q`."""
        if not self.q_clamp:
            return self.q
        # value: exactly the clamped q (q - q.detach() is 0); gradient: 1 with respect to q
        return self.q.detach().clamp(0.0, 1.0) + (self.q - self.q.detach())

    def train(self, mode: bool = True) -> SeparatedEnsemble:
        """Train mode for both copies except their batch norm (2021); without
        `mixture_dropout` the frozen copy stays wholly in eval mode."""
        super().train(mode)
        freeze_batch_norm(self.multisrc_model)
        freeze_batch_norm(self.monaural_model)
        if not self.mixture_dropout:
            self.monaural_model.eval()
        return self

    def separated_path(self, sources: Tensor) -> SEDOutput:
        """Fine-tuned copy on each source, summed over sources, clamped to 1.

        Args:
            sources: (batch, sources, ...) inputs of `features`.
        """
        batch, n_sources = sources.shape[:2]
        strong, weak = self.multisrc_model(self.features(sources.flatten(0, 1)))
        strong = strong.reshape(batch, n_sources, *strong.shape[1:]).sum(1).clamp(max=1)
        weak = weak.reshape(batch, n_sources, *weak.shape[1:]).sum(1).clamp(max=1)
        return strong, weak

    def mixture_path(self, mixture: Tensor) -> SEDOutput:
        """Frozen copy on the mixture, without gradient.

        Args:
            mixture: (batch, ...) input of `features`.
        """
        with torch.no_grad():
            return self.monaural_model(self.features(mixture))

    def forward(self, sources: Tensor, mixture: Tensor | None = None) -> SEDOutput:
        """Ensembled predictions.

        Args:
            sources: (batch, sources, ...) separated sources: waveforms (batch, sources,
                samples) or mel magnitudes (batch, sources, n_mels, frames), whatever
                `features` takes. With `mixture_first`: (batch, 1 + sources, ...), the
                mixture at index 0 of dim 1.
            mixture: (batch, ...) the mixture in the same form; None: the sum over sources
                (2021), or channel 0 with `mixture_first` (then it must stay None).

        Returns:
            strong (batch, classes, frames), weak (batch, classes): q * mixture path +
            (1 - q) * separated path.
        """
        if self.mixture_first:
            if mixture is not None:
                raise ValueError("mixture_first: the mixture is channel 0 of the input, not an argument")
            if sources.dim() < 3 or sources.shape[1] < 2:
                raise ValueError(
                    f"expected (batch, 1 + sources, ...) with at least one source, got shape "
                    f"{tuple(sources.shape)}"
                )
            mixture, sources = sources[:, 0], sources[:, 1:]
        if sources.dim() < 3:
            raise ValueError(f"expected (batch, sources, ...), got shape {tuple(sources.shape)}")
        if mixture is None:
            mixture = sources.sum(1)
        strong_sep, weak_sep = self.separated_path(sources)
        strong_mix, weak_mix = self.mixture_path(mixture)
        q = self.mixture_weight
        return q * strong_mix + (1 - q) * strong_sep, q * weak_mix + (1 - q) * weak_sep
