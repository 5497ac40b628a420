"""`SoundEventDetector`: a trained model applied to recordings of any rate, channels and length.

    detector = SoundEventDetector.from_checkpoint("exp/demo/best.ckpt")
    waveform, sample_rate = soundfile.read("kitchen.wav")   # (samples,) or (samples, channels)
    scores = detector.scores(waveform, sample_rate)        # (n_classes, n_frames)
    events = detector.events(scores, threshold=0.5)         # filename, onset, offset, event_label
    stream = detector.stream(44100, window=2, hop=1)        # a live stream: stream.push(chunk) -> events

Features, scaler and network come from the checkpoint's config, so they are the ones the model
was trained with. Every checkpoint the project trains is taken: train_sed.py's CRNN, the official
2021 one, and finetune_on_separated.py's SSEP + SED ensemble, which needs the separation model
(``separation_model=FILE``, else the checkpoint's ``training.sep_model``, the converted PyTorch
TDCN++, or its TensorFlow ``sep_graph`` / ``sep_checkpoint``): each window is separated as 2021
separated its 10 s clips, then the ensemble scores the mixture and its sources. The 2023 CRNN
fed BEATs embeddings (``net.use_embeddings``) needs the BEATs checkpoint (``beats=PATH``, else
the checkpoint's ``pretrained.checkpoint``): each window, zero-padded to the training clip length
(10 s) as extraction padded clips, goes through BEATs and the CRNN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from desed_task.checkpoints import MODELS, lay_out_modules, network_name
from desed_task.data.resample import (
    check_config_resampler,
    check_resampler,
    resample_stream,
    upsampling_note,
)
from desed_task.decoding.decode import decode_at_class_thresholds
from desed_task.errors import OptionError, UserError
from desed_task.features.mel import MelSpectrogram
from desed_task.features.network_input import mel_magnitudes, normalise
from desed_task.inference.reading import AudioFile, to_mono
from desed_task.inference.stream import DetectionStream
from desed_task.inference.windows import LongFormScorer
from desed_task.nnet import NetworkNeeds, network_from_config, network_needs, run_network
from desed_task.nnet.beats import BEATs, BEATsCheckpointError, load_beats
from desed_task.separation.folder import Separator

log = logging.getLogger(__name__)

MIN_SECONDS = 1.0  # shorter audio is zero-padded to this, its scores cut back


class SEDPipeline(nn.Module):
    """Waveform -> frame and clip probabilities: mel, dB (amin 1e-5, clamp [-50, 80]), scaler,
    network; the operations of ``MeanTeacher.detect(MeanTeacher.mel_magnitudes(audio))``
    (`desed_task.features.network_input`). A network fed embeddings (`takes_embeddings`, the
    2023 CRNN) gets those of `beats` on the same audio.

    Args:
        mel, scaler, network: the training module's.
        mixture_input: for a network fed separated sources (`takes_sources`), the config's
            ``training.ensemble_mixture_input`` (None: sum_of_sources, 2021).
        beats: for a network fed embeddings: the BEATs model they were extracted with (None:
            the pipeline cannot score, e.g. when ONNX Runtime runs an export instead).
        embedding_type: which embeddings the network takes, "frame" or "global".
        needs: what the network is fed and how it exports, read from its contract
            (`desed_task.nnet.network_needs` of the config); None: features only, exported as is.

    Shapes:
        audio: (batch, samples) at the model's rate, or with `takes_sources` (batch, 1 + sources,
        samples), the mixture first -> strong (batch, n_classes, frames), weak (batch, n_classes).
        With `takes_embeddings` the audio is the training clip length (10 s windows).
    """

    def __init__(
        self,
        mel: MelSpectrogram,
        scaler: nn.Module,
        network: nn.Module,
        mixture_input: str | None = None,
        beats: BEATs | None = None,
        embedding_type: str = "frame",
        needs: NetworkNeeds | None = None,
    ) -> None:
        super().__init__()
        self.mel = mel
        self.scaler = scaler
        self.network = network
        self.mixture_input = mixture_input
        self.needs = needs
        self.takes_sources = bool(needs and needs.sources)
        self.takes_embeddings = bool(needs and needs.embeddings)
        self.beats = beats
        self.embedding_type = embedding_type

    def embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> BEATs embeddings, (batch, dim, tokens) frame or (batch, dim) global."""
        if self.beats is None:
            raise BeatsMissing("this detector of the 2023 CRNN was built without BEATs: it cannot score; build it with beats=PATH")
        return self.beats.embeddings(audio)[self.embedding_type]

    def mel_magnitudes(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, [1 + sources,] samples) -> (batch, [1 + sources,] n_mels, frames)."""
        return mel_magnitudes(self.mel, audio, self.mixture_input)

    def normalise(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel magnitudes -> the network's input (log-mel, scaler), same shape."""
        return normalise(self.scaler, mel)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.normalise(self.mel_magnitudes(audio))
        return run_network(self.network, features, self.embeddings(audio) if self.takes_embeddings else None)


class SeparationModelMissing(UserError):
    """An SSEP + SED checkpoint without its separation model; the message says what to pass."""


class BeatsMissing(UserError):
    """A checkpoint of the 2023 CRNN without its BEATs file; the message says what to pass."""


def beats_model_of(config: dict, given: str | Path | BEATs | None, source: str) -> BEATs:
    """The BEATs model whose embeddings a checkpoint of the 2023 CRNN was trained on.

    Args:
        config: the checkpoint's config (``pretrained.checkpoint``, ``net.embedding_size``).
        given: a loaded model, its ``.pt`` file, or None: the config's ``pretrained.checkpoint``
            when that file exists.
        source: the checkpoint, for messages.

    Raises:
        BeatsMissing: none given and the config's file is absent.
        BEATsCheckpointError (a CheckpointError): the file is not a BEATs checkpoint.
        BEATsCheckpointError: its embeddings are not as wide as the network's input.
    """
    if given is None:
        named = (config.get("pretrained") or {}).get("checkpoint")
        if not named or not Path(named).is_file():
            where = f"the checkpoint's pretrained.checkpoint ({named}) is not there" if named else \
                "the checkpoint's config names none (pretrained.checkpoint)"
            raise BeatsMissing(
                f"{source}: a checkpoint of the 2023 CRNN fed BEATs embeddings (net.use_embeddings: true): "
                f"each window's embeddings are computed with BEATs; give the BEATs checkpoint the "
                f"embeddings were extracted with, --beats BEATS.pt (Python: beats=PATH), e.g. "
                f"BEATs_iter3_plus_AS2M.pt - {where}"
            )
        given = named
    model = given if isinstance(given, BEATs) else load_beats(given)
    width = int(config["net"].get("embedding_size", 768))
    if model.embedding_dim != width:
        raise BEATsCheckpointError(
            f"{source}: BEATs {'' if isinstance(given, BEATs) else str(given) + ' '}gives embeddings of "
            f"{model.embedding_dim} channels, the network takes net.embedding_size {width}: give the "
            "BEATs checkpoint the embeddings were extracted with"
        )
    return model.eval()


def separation_model_of(
    config: dict, given: str | Path | Separator | None, source: str, device: str | torch.device = "cpu"
) -> Separator:
    """The separation model of an SSEP + SED checkpoint (`desed_task.separation.backend`: the
    converted PyTorch file by default, on `device`; ``separation.backend: tensorflow``: the
    TensorFlow session).

    Args:
        config: the checkpoint's config (``training.sep_model``, or ``sep_graph`` /
            ``sep_checkpoint``; ``separation.backend``).
        given: a model (anything with ``separate``), a converted ``.pt`` file, a TensorFlow
            model's folder (``inference.meta`` and one ``model.ckpt-*``), or None: the config's
            files when they exist.
        source: the checkpoint, for messages.
        device: where the PyTorch model runs.

    Raises:
        SeparationModelMissing: none given and the config's files are absent.
        FileNotFoundError: the file or folder given lacks the model.
        TensorFlowMissing: TensorFlow is needed (its backend, or a conversion on the fly) and absent.
    """
    from desed_task.config import ConfigError
    from desed_task.separation.backend import open_config_separator

    if given is None:
        training = config["training"]
        named = [training.get(key) for key in ("sep_model", "sep_graph", "sep_checkpoint")]
        tf_files = named[1] and named[2] and Path(named[1]).is_file() and \
            Path(named[2]).with_name(Path(named[2]).name + ".index").is_file()
        if not (named[0] and Path(named[0]).is_file()) and not tf_files:
            raise SeparationModelMissing(
                f"{source}: an SSEP + SED checkpoint (finetune_on_separated.py): each window is "
                f"separated before its ensemble scores it; give the separation model with "
                f"--separation_model FILE (Python: separation_model=FILE; the converted separation.pt "
                f"of python -m desed_task.separation convert, or the TensorFlow model's folder) - the "
                f"checkpoint's training.sep_model ({named[0]}) and sep_graph / sep_checkpoint "
                f"({named[1]}, {named[2]}) are not there"
            )
    try:
        return open_config_separator(config, device, given=given, source=source)
    except ConfigError as err:
        raise SeparationModelMissing(str(err)) from None


def with_separated_sources(audio: torch.Tensor, separator: Separator) -> torch.Tensor:
    """(batch, samples) mixtures -> (batch, 1 + sources, samples): each mixture, then its
    sources by `separator`: the whole batch in one pass for a PyTorch model (on its device), one
    waveform at a time otherwise (as run_separation.py separates clips)."""
    if hasattr(separator, "separate_tensor"):
        sources = separator.separate_tensor(audio).to(audio)
    else:
        sources = torch.stack([torch.from_numpy(separator.separate(mixture.cpu().numpy())) for mixture in audio]).to(audio)
    return torch.cat([audio[:, None], sources], 1)


MAX_CHANNELS = 32  # an axis this short is channels; a recording has far more samples


def mono_waveform(waveform: np.ndarray | torch.Tensor) -> np.ndarray:
    """One recording in any common layout -> (samples,) float32 mono (the channel average).

    Args:
        waveform: (samples,), (samples, channels) or (channels, samples): the channel axis is
            the one of at most ``MAX_CHANNELS`` entries when the other is longer. Integer PCM is
            scaled to [-1, 1) by its type's range, as soundfile reads it.

    Raises:
        ValueError: empty, more than 2 dimensions, non-finite values, or a 2-D shape whose
            channel axis cannot be told (both axes, or neither, of at most MAX_CHANNELS).
    """
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    array = np.asarray(waveform)
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(-np.iinfo(array.dtype).min)
    array = array.astype(np.float32, copy=False)
    if array.ndim not in (1, 2) or array.size == 0:
        raise ValueError(
            f"waveform of shape {array.shape}: give one recording as (samples,), (samples, "
            f"channels) or (channels, samples), with samples > 0"
        )
    if array.ndim == 2:
        is_channels = [n <= MAX_CHANNELS for n in array.shape]
        if is_channels[0] == is_channels[1]:
            raise ValueError(
                f"waveform of shape {array.shape}: cannot tell the channel axis (channels are the "
                f"axis of at most {MAX_CHANNELS}, samples the other); give (samples,) mono, e.g. "
                f"waveform.mean(axis=1) for soundfile's (samples, channels)"
            )
        array = to_mono(array if is_channels[1] else array.T)
    if not np.isfinite(array).all():
        raise ValueError("waveform holds NaN or infinite values")
    return array


class SoundEventDetector:
    """A SED model ready to score recordings.

    Args:
        pipeline: waveform -> (strong, weak), see :class:`SEDPipeline`.
        class_names: (n_classes,) in the network's output order.
        sample_rate: the model's rate in Hz (16000).
        hop_length: STFT hop in samples (256).
        net_pooling: the network's time pooling (4).
        window, hop: sliding windows in seconds (None: the whole recording in one pass).
        batch_size: windows per forward pass.
        device: where the network runs.
        median_window: default median filter of :meth:`events`, in frames (the config's
            ``training.median_window``).
        resampler: how recordings at another rate are resampled: kaiser_best (2021, the
            default) or soxr_hq (the config's ``data.resampler``).
        separator: for a pipeline that `takes_sources` (SSEP + SED): the separation model
            each window is separated with before the pipeline scores it.
        min_seconds: shorter windows are zero-padded to this, their scores cut back (1 s; the
            training clip length for a pipeline that `takes_embeddings`).
    """

    def __init__(
        self,
        pipeline: nn.Module,
        class_names: Sequence[str],
        sample_rate: int = 16000,
        hop_length: int = 256,
        net_pooling: int = 4,
        window: float | None = 10.0,
        hop: float | None = 5.0,
        batch_size: int = 8,
        device: str | torch.device = "cpu",
        median_window: int = 7,
        resampler: str | None = None,
        separator: Separator | None = None,
        min_seconds: float = MIN_SECONDS,
    ) -> None:
        self.separator = separator
        self.median_window = int(median_window)
        self.resampler = check_resampler(resampler)
        self.device = torch.device(device)
        self.pipeline = pipeline.eval().to(self.device)
        self.class_names = list(class_names)
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.net_pooling = int(net_pooling)
        self.min_seconds = float(min_seconds)
        # the 2023 CRNN reads embeddings of training-length clips: no window may be longer
        self.max_window = self.min_seconds if getattr(pipeline, "takes_embeddings", False) else None
        self.scorer = LongFormScorer(
            self._strong,
            hop_length=self.hop_length,
            net_pooling=self.net_pooling,
            window=None if window is None else round(window * self.sample_rate),
            hop=None if hop is None else round(hop * self.sample_rate),
            min_samples=round(min_seconds * self.sample_rate),
            batch_size=batch_size,
        )

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        model: str = "teacher",
        separation_model: str | Path | Separator | None = None,
        separate: bool = True,
        beats: str | Path | BEATs | None = None,
        **kwargs,
    ) -> SoundEventDetector:
        """A detector from a checkpoint of train_sed.py or finetune_on_separated.py (or an
        official 2021 one).

        Args:
            path: the ``.ckpt`` file.
            model: "teacher" or "student".
            separation_model: SSEP + SED checkpoints only: the converted separation file
                (``separation.pt``), a TensorFlow model's folder (``inference.meta`` and
                ``model.ckpt-*``) or a loaded model (anything with ``separate``); None: the
                checkpoint's ``training.sep_model`` (or ``sep_graph`` / ``sep_checkpoint``).
            separate: False: load no separation model; the pipeline of an SSEP + SED checkpoint
                then takes the mixture and its sources, and `scores` is refused (for export).
            beats: checkpoints of the 2023 CRNN only (``net.use_embeddings``): the BEATs file
                (``.pt``, official format) or a loaded model; None: the checkpoint's
                ``pretrained.checkpoint`` (see `beats_model_of`); False: none (the detector
                cannot score, e.g. when ONNX Runtime runs an export with BEATs inside).
            kwargs: ``window``, ``hop``, ``batch_size``, ``device``, ``resampler`` (see the
                class; ``resampler`` None or absent: the checkpoint's ``data.resampler``). The
                2023 CRNN's ``window`` is at most the training clip length (10 s).

        Raises:
            CheckpointError: the file is not a usable checkpoint (the message says why).
            SeparationModelMissing: an SSEP + SED checkpoint without its separation model.
            BeatsMissing: a checkpoint of the 2023 CRNN without its BEATs file.
            OptionError: a window longer than a 2023 CRNN's clips.
            BEATsCheckpointError: a BEATs of another width.
        """
        from desed_task.checkpoints import (
            config_from_checkpoint,
            load_checkpoint,
            load_network_weights,
        )

        checkpoint = load_checkpoint(path)
        config = config_from_checkpoint(checkpoint, path)
        return cls.from_config(
            config, model, load=lambda module: load_network_weights(module, checkpoint, path),
            separation_model=separation_model, separate=separate, beats=beats, source=str(path), **kwargs,
        )

    @classmethod
    def from_config(
        cls,
        config: dict,
        model: str = "teacher",
        load: Callable[[nn.Module], None] | None = None,
        separation_model: str | Path | Separator | None = None,
        separate: bool = True,
        beats: str | Path | BEATs | None = None,
        source: str = "config",
        **kwargs,
    ) -> SoundEventDetector:
        """A detector built from a training config; ``load(module)`` fills the weights of a
        module laid out as the training module (``mel``, ``scaler``, ``sed_student``,
        ``sed_teacher``; untrained weights without it). The network is the config's
        (`desed_task.nnet.network_from_config`). Recordings are resampled as the config's
        ``data.resampler`` (kaiser_best when unset) unless ``resampler`` is given;
        ``separation_model``, ``separate`` and ``beats`` as in `from_checkpoint`; ``source``
        names the config in messages."""
        from desed_task.data.label_encoder import ManyHotEncoder

        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        check_config_resampler(config, source)
        beats_model = None
        needs = network_needs(config)
        if needs.embeddings:
            # every window is scored as the training clips were read: padded to their length
            clip_seconds = float(config["data"]["audio_max_len"])
            window = kwargs.get("window", 10.0)
            if window is None or window > clip_seconds:
                raise OptionError(
                    f"{source}: the 2023 CRNN reads BEATs embeddings of {clip_seconds:g} s clips: score "
                    f"with windows of at most {clip_seconds:g} s (--window, Python window=), not "
                    f"{'one pass' if window is None else f'{window:g} s'}"
                )
            kwargs["min_seconds"] = clip_seconds
            if beats is not False:
                beats_model = beats_model_of(config, beats, source)
        encoder = ManyHotEncoder.from_config(config)
        module = nn.Module()  # the training module's layout, so that its checkpoints load here
        lay_out_modules(module, config, network_from_config(config))
        if load is not None:
            load(module)
        pipeline = SEDPipeline(
            module.mel, module.scaler, getattr(module, network_name(model)),
            mixture_input=config["training"].get("ensemble_mixture_input"),
            beats=beats_model, embedding_type=config["net"].get("embedding_type", "frame"), needs=needs,
        )
        separator = None
        if pipeline.takes_sources and separate:
            separator = separation_model_of(config, separation_model, source, kwargs.get("device", "cpu"))
        detector = cls(
            pipeline,
            list(encoder.labels),
            sample_rate=int(config["feats"]["sample_rate"]),
            hop_length=int(config["feats"]["hop_length"]),
            net_pooling=int(config["data"]["net_subsample"]),
            separator=separator,
            **{
                "median_window": int(config["training"]["median_window"]),
                **kwargs,
                "resampler": kwargs.get("resampler") or config.get("data", {}).get("resampler"),
            },
        )
        detector.config = config  # what it was built from (export reads its separation keys)
        return detector

    @property
    def frame_step(self) -> float:
        """Seconds per output frame (0.064 for the 2021 CRNN)."""
        return self.hop_length * self.net_pooling / self.sample_rate

    def _check_can_score(self) -> None:
        if self.separator is None and getattr(self.pipeline, "takes_sources", False):
            raise SeparationModelMissing(
                "this SSEP + SED detector was built without its separation model (separate=False): "
                "it cannot score recordings; build it with separation_model=FILE"
            )

    def _strong(self, audio: torch.Tensor) -> torch.Tensor:
        self._check_can_score()
        audio = audio.to(self.device)
        if self.separator is not None:
            audio = with_separated_sources(audio, self.separator)
        return self.pipeline(audio)[0]

    def _note_low_rate(self, source: str | Path, rate: int) -> None:
        """Log one warning for audio below the model's rate (see `upsampling_note`)."""
        note = upsampling_note(source, rate, self.sample_rate)
        if note is not None:
            log.warning("%s", note)

    # ------------------------------------------------------------------ scores
    def scores(self, waveform: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """Frame scores of one recording held in memory.

        Args:
            waveform: (samples,) mono, (samples, channels) as ``soundfile.read`` returns it, or
                (channels, samples) as ``torchaudio.load`` does; float audio in [-1, 1] or
                integer PCM (scaled by its type's range). Channels are averaged, as in training.
            sample_rate: its rate in Hz; resampled to the model's rate when different (below
                it, with one logged warning: see `upsampling_note`).

        Returns:
            (n_classes, n_frames) probabilities; frame i covers [i, i + 1) * frame_step s.

        Raises:
            ValueError: an empty, non-finite or ambiguous array (both axes could be channels).
        """
        mono = mono_waveform(waveform)
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
        self._note_low_rate("the waveform", int(sample_rate))
        chunks = resample_stream([mono], int(sample_rate), self.sample_rate, self.resampler)
        return self.scorer.score_windows(self.scorer.windows(chunks))

    def score_file(
        self, path: str | Path, on_window: Callable[[int, np.ndarray], None] | None = None
    ) -> tuple[np.ndarray, AudioFile]:
        """Frame scores of an audio file, read in blocks (memory bounded for hours of audio); a
        file below the model's rate is named in one logged warning (see `upsampling_note`).

        Returns:
            (n_classes, n_frames) probabilities and the opened file's facts (rate, duration).

        Raises:
            AudioError: unreadable or empty file.
        """
        audio = AudioFile(path, self.sample_rate, self.resampler)
        self._note_low_rate(audio.path, audio.sample_rate)
        return self.scorer.score_windows(self.scorer.windows(audio.chunks()), on_window), audio

    # ------------------------------------------------------------------ streams
    def stream(
        self,
        sample_rate: int,
        window: float | None = None,
        hop: float | None = None,
        threshold: float | Sequence[float] = 0.5,
        median_window: int | Sequence[int] | None = None,
        filename: str = "",
    ) -> DetectionStream:
        """A live stream: push chunks of audio, get events as they become final
        (``desed_task.inference.stream``: the latency bound, and why it equals the offline path).

        Args:
            sample_rate: the stream's rate in Hz (resampled to the model's rate as offline).
            window, hop: sliding windows in seconds (None: the detector's; a window given
                without a hop gets half the window as hop).
            threshold: one, or (n_classes,) decision thresholds.
            median_window: frames, one or (n_classes,) (None: the model's, 7 in 2021).
            filename: the ``filename`` column of the events.

        Returns:
            A :class:`DetectionStream`; its events equal ``events(scores(audio), filename,
            threshold, median_window, duration)`` of a detector with this window and hop.

        Raises:
            ValueError: no window (a detector scoring in one pass and none given), a window
                longer than the 2023 CRNN's clips, or a bad rate; SeparationModelMissing: an
                SSEP + SED detector without its separation model.
        """
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
        self._check_can_score()
        if window is None:
            if self.scorer.window is None:
                raise ValueError(
                    "this detector scores recordings in one pass (window=None): a stream is scored in "
                    "sliding windows, give window= (seconds), e.g. 10 with hop 5"
                )
            window_samples = self.scorer.window
            hop_samples = self.scorer.hop if hop is None else round(hop * self.sample_rate)
        else:
            if window <= 0:
                raise ValueError(f"window must be a positive number of seconds, got {window}")
            window_samples = round(window * self.sample_rate)
            hop_samples = round((window / 2 if hop is None else hop) * self.sample_rate)
        if hop_samples <= 0:
            raise ValueError(f"hop must be a positive number of seconds, got {hop}")
        if self.max_window is not None and window_samples > round(self.max_window * self.sample_rate):
            raise ValueError(
                f"the 2023 CRNN reads BEATs embeddings of {self.max_window:g} s clips: stream with windows "
                f"of at most {self.max_window:g} s, not {window_samples / self.sample_rate:g} s"
            )
        scorer = LongFormScorer(
            self._strong, self.hop_length, self.net_pooling, window_samples, hop_samples,
            min_samples=self.scorer.min_samples, batch_size=self.scorer.batch_size,
        )
        return DetectionStream(
            scorer, self.class_names, int(sample_rate), self.sample_rate, self.resampler, threshold,
            self.median_window if median_window is None else median_window, self.frame_step, filename,
        )

    # ------------------------------------------------------------------ events
    def events(
        self,
        scores: np.ndarray,
        filename: str = "",
        threshold: float | Sequence[float] = 0.5,
        median_window: int | Sequence[int] | None = None,
        duration: float | None = None,
    ) -> pd.DataFrame:
        """Events of one recording's scores (2021 decoding: threshold then median filter).

        Args:
            scores: (n_classes, n_frames) from :meth:`scores` or :meth:`score_file`.
            filename: written to the ``filename`` column.
            threshold: one for all classes or (n_classes,) values.
            median_window: frames, one for all classes or (n_classes,) values (None: the
                model's config value, 7 in 2021).
            duration: seconds; events are clipped to it when given.

        Returns:
            DataFrame with filename, onset, offset, event_label (seconds).
        """
        median_window = self.median_window if median_window is None else median_window
        table = decode_at_class_thresholds(
            {filename: np.asarray(scores)}, self.class_names, threshold, median_window, self.frame_step,
            None if duration is None else {filename: duration},
        )
        return table.sort_values(["onset", "event_label"], kind="stable").reset_index(drop=True)
