"""Golden outputs of 2021's resampler for tests/test_resample.py, made by resampy 0.2.2 itself.

    python tests/golden/make_resample_golden.py [--target DIR]

The 2021 recipe resampled with ``librosa.resample(x, orig_sr, target_sr)`` (librosa 0.8), which
ran ``resampy.resample(x, orig_sr, target_sr, filter="kaiser_best")`` with resampy 0.2.2 (the
release of 2019-2022) and then zero-padded the result to ``ceil(len(x) * ratio)`` samples. resampy
0.2.2 is installed with pip (no dependencies; it uses this Python's numba and scipy, and needs
``six`` and setuptools' ``pkg_resources``, setuptools < 81) into ``--target`` (default
``~/.cache/desed_task/resampy-0.2.2``), and this script runs again with it first on the path.

It writes tests/golden/resample_2021_golden.npz: ``input`` (int16, as a 16-bit wav is read,
divided by 32768) and for each case ``<case>`` the float32 output of 2021's resample.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("resample_2021_golden.npz")
CASES = {  # name: (input rate, output rate, input samples, channels)
    "44k_to_16k": (44100, 16000, 4411, 1),  # 4411 * 16000 / 44100 = 1600.4: resampy 1600, padded to 1601
    "48k_to_16k_stereo": (48000, 16000, 4800, 2),
    "8k_to_16k": (8000, 16000, 800, 1),
}
INPUT_SAMPLES = 2 * 4800


def make_input() -> np.ndarray:
    """(INPUT_SAMPLES,) int16: noise, tones up to 20 kHz and a click, at about -20 dBFS."""
    rng = np.random.default_rng(2021)
    t = np.arange(INPUT_SAMPLES) / 44100
    tones = sum(np.sin(2 * np.pi * f * t + p) for f, p in [(440, 0), (3100, 1), (7600, 2), (8300, 3), (19000, 4)])
    signal = 0.05 * rng.standard_normal(INPUT_SAMPLES) + 0.02 * tones
    signal[3000] += 0.8
    return np.round(np.clip(signal, -1, 1) * 32767).astype(np.int16)


def golden(resampy) -> dict[str, np.ndarray]:
    raw = make_input()
    out = {"input": raw}
    for name, (orig, target, n, channels) in CASES.items():
        x = (raw[: n * channels].astype(np.float32) / 32768).reshape(n, channels)
        ys = []
        for channel in x.T:  # 2021 resampled channel by channel
            y = resampy.resample(np.ascontiguousarray(channel), orig, target, filter="kaiser_best")
            length = int(np.ceil(len(channel) * (float(target) / orig)))  # librosa 0.8's fix_length
            ys.append(np.pad(y, (0, max(0, length - len(y))))[:length])
        out[name] = np.stack(ys, axis=1).astype(np.float32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=Path, default=Path.home() / ".cache" / "desed_task" / "resampy-0.2.2")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.inner:
        if not (args.target / "resampy").is_dir():
            subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(args.target),
                            "resampy==0.2.2", "six"], check=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.target), os.environ.get("PYTHONPATH", "")])}
        subprocess.run([sys.executable, __file__, "--target", str(args.target), "--inner"], check=True, env=env)
        return
    import resampy

    assert resampy.version.version == "0.2.2", resampy.__file__
    assert str(args.target) in resampy.__file__, resampy.__file__
    np.savez_compressed(OUT, **golden(resampy))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
