"""What a SED network is fed, from audio: mel magnitudes, then log-mel and the scaler.

One home for training (`MeanTeacher`), inference (`SEDPipeline`) and export (`ExportPipeline`):

    mel = mel_magnitudes(mel_spectrogram, audio, mixture_input)   # linear mel magnitudes
    features = normalise(scaler, mel)                              # log_mel, then the scaler
    strong, weak = network(features)

With separated sources (the SSEP + SED ensemble) the audio is (batch, 1 + sources, samples),
the mixture first, and so are the features.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from desed_task.features.mel import log_mel

SUM_OF_SOURCES = "sum_of_sources"
MIXTURE_INPUTS = (SUM_OF_SOURCES, "mixture")
"""Values of ``training.ensemble_mixture_input`` (unset: sum_of_sources, the 2021 input)."""


def mel_magnitudes(
    mel: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor, mixture_input: str | None = None
) -> torch.Tensor:
    """Linear mel magnitudes of a batch of clips.

    Args:
        mel: (..., samples) -> (..., n_mels, frames), e.g. `MelSpectrogram`.
        audio: (batch, samples); or separated, (batch, 1 + sources, samples) with the mixture
            at index 0 and the sources after it.
        mixture_input: with separated audio, what channel 0 (the input of the ensemble's
            mixture branch) holds: ``sum_of_sources`` (2021, also None) the sum over the
            sources of their mel magnitudes (2021 read only the separated files; channel 0 of
            `audio` is not read), ``mixture`` the mixture's own mel.

    Returns:
        (batch, n_mels, frames), or (batch, 1 + sources, n_mels, frames).
    """
    if audio.dim() == 3 and (mixture_input or SUM_OF_SOURCES) == SUM_OF_SOURCES:
        sources = mel(audio[:, 1:])
        return torch.cat([sources.sum(1, keepdim=True), sources], 1)
    return mel(audio)


def normalise(scaler: Callable[[torch.Tensor], torch.Tensor], mel: torch.Tensor) -> torch.Tensor:
    """`log_mel`, then the scaler spectrogram by spectrogram (clips and sources alike).

    Args:
        scaler: (N, n_mels, frames) -> the same shape, e.g. `TorchScaler`.
        mel: (batch, n_mels, frames) or (batch, 1 + sources, n_mels, frames) mel magnitudes.

    Returns:
        the network's input, shaped as `mel`.
    """
    db = log_mel(mel)
    if db.dim() == 3:
        return scaler(db)
    return scaler(db.reshape(-1, *db.shape[-2:])).reshape(mel.shape)
