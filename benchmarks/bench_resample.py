"""The two resamplers of ``data.resampler`` on a folder of clips: time, and how far apart their
log-mel features are.

Each resampler makes its own 16 kHz copy of --folder (``resample_folder``, as train_sed.py does;
one run each, numba's compiled loop already cached). Then every clip of both copies goes through
the project's features (``desed_task/features/mel.py``: 128 HTK mel bands 0-8000 Hz, magnitude,
dB with amin 1e-5, clamped to [-50, 80]) and the difference is reported: its largest value, and
per mel band its largest and mean absolute value. With --librosa, the same for today's
``librosa.resample(res_type="kaiser_best")`` (resampy >= 0.3, another filter) against 2021's.

    python benchmarks/bench_resample.py [--folder data/demo/audio/validation/validation_44k] [--librosa]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from desed_task.config import load_config  # noqa: E402
from desed_task.data.audio import read_audio  # noqa: E402
from desed_task.data.resample import resample_audio, resample_folder  # noqa: E402
from desed_task.features.mel import MelSpectrogram, log_mel, mel_to_hz_htk  # noqa: E402


def log_mels(folder: Path, mel: MelSpectrogram) -> dict[str, torch.Tensor]:
    """name -> (n_mels, frames) clamped dB of every wav of ``folder``, read as training reads."""
    out = {}
    for path in sorted(folder.glob("*.wav")):
        audio, _ = read_audio(path, sample_rate=16000, target_len=160000)
        out[path.name] = log_mel(mel(audio[None]))[0]
    return out


def band_centres(feats: dict) -> np.ndarray:
    lo, hi = (float(torch.log10(torch.tensor(1 + f / 700.0)) * 2595) for f in (feats["f_min"], feats["f_max"]))
    return mel_to_hz_htk(torch.linspace(lo, hi, feats["n_mels"] + 2, dtype=torch.float64))[1:-1].numpy()


def compare(name: str, a: dict, b: dict, centres: np.ndarray) -> None:
    diff = torch.stack([(a[k] - b[k]).abs() for k in sorted(a)])  # (clips, n_mels, frames)
    per_band_max = diff.amax((0, 2)).numpy()
    per_band_mean = diff.mean((0, 2)).numpy()
    print(f"\n{name}: {len(a)} clips, largest |difference| {diff.max():.3f} dB, mean {diff.mean():.4f} dB")
    print("  band  centre Hz   max dB   mean dB")
    for band in np.argsort(-per_band_max)[:8]:
        print(f"  {band:4d}  {centres[band]:9.0f}  {per_band_max[band]:7.3f}  {per_band_mean[band]:8.4f}")
    low = per_band_max[centres < 6000]
    print(f"  bands below 6 kHz ({len(low)}): largest {low.max():.4f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=REPO / "data/demo/audio/validation/validation_44k")
    parser.add_argument("--librosa", action="store_true", help="also today's librosa kaiser_best (resampy >= 0.3)")
    args = parser.parse_args()
    feats = load_config(REPO / "confs" / "sed.yaml")["feats"]
    mel = MelSpectrogram.from_config(feats)
    centres = band_centres(feats)
    torch.set_num_threads(1)
    for resampler in ("kaiser_best", "soxr_hq"):  # imports and numba's compiled loop out of the timing
        resample_audio(np.zeros(4410, np.float32), 44100, 16000, resampler)
    with tempfile.TemporaryDirectory() as tmp:
        features = {}
        for resampler in ("kaiser_best", "soxr_hq"):
            started = time.perf_counter()
            report = resample_folder(args.folder, Path(tmp) / resampler, 16000, resampler=resampler, progress=False)
            seconds = time.perf_counter() - started
            print(f"{resampler}: {report.resampled} files resampled in {seconds:.2f} s")
            features[resampler] = log_mels(Path(tmp) / resampler, mel)
        compare("kaiser_best (2021) vs soxr_hq", features["kaiser_best"], features["soxr_hq"], centres)
        if args.librosa:
            import librosa

            out = Path(tmp) / "librosa"
            out.mkdir()
            for path in sorted(args.folder.glob("*.wav")):
                x, fs = sf.read(str(path), dtype="float32")
                sf.write(str(out / path.name), librosa.resample(x, orig_sr=fs, target_sr=16000, res_type="kaiser_best"), 16000, subtype="FLOAT")
            compare("kaiser_best (2021) vs librosa 0.11 kaiser_best (resampy 0.4)", features["kaiser_best"], log_mels(out, mel), centres)


if __name__ == "__main__":
    main()
