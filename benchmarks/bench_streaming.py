"""The latency/accuracy curve of streaming detection (``SoundEventDetector.stream``) on a dev-test set.

The dev-test clips of ``--conf_file`` (its 16 kHz ``data.test_folder``, ``test_tsv``, ``test_dur``),
in name order, each zero-padded to a whole output frame (64 ms), are joined into one stream and
pushed in chunks of ``--chunk`` seconds, for windows of ``--windows`` seconds (hop half the window,
the 2021 median filter of ``training.median_window`` frames, threshold 0.5). For each window:

- PSDS1, PSDS2 (50 operating points, as the 2021 test step) of the streamed frame scores, cut back
  into clips (``evaluate_scores``: each clip median-filtered and decoded on its own);
- the intersection F1 (``intersection_f1_macro``) of the streamed events themselves (the stream's
  median filter and threshold 0.5), each cut at the clip boundaries into clip time;
- the mean and largest latency of those events: the stream time of the push that returned the
  event minus its offset (events ending at a clip boundary only because the clip ended included);
- the real-time factor (audio seconds per second of compute) of streaming the first
  ``--rtf_seconds`` of the stream, with PyTorch and ONNX Runtime on 1 and 2 threads.

A first row gives the offline 2021 evaluation (each clip in one pass) for reference. Writes
``streaming.tsv``, ``streaming.md`` and ``streaming.png`` (PSDS against latency) under --out_dir.

    python benchmarks/bench_streaming.py --checkpoint exp/2021_baseline/best.ckpt --conf_file confs/sed.yaml
    python benchmarks/bench_streaming.py --checkpoint exp/demo/best.ckpt --conf_file confs/demo.yaml \
        --out_dir exp/demo/streaming --png docs/streaming_demo.png
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from desed_task.config import load_config  # noqa: E402
from desed_task.evaluation import (  # noqa: E402
    evaluate_scores,
    intersection_f1_macro,
    read_durations,
    read_event_table,
)
from desed_task.inference import SoundEventDetector  # noqa: E402

FRAME = 1024  # samples per output frame at 16 kHz


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--conf_file", required=True, help="its data.test_folder (16 kHz), test_tsv and test_dur are read")
    parser.add_argument("--model", default="teacher", choices=("teacher", "student"))
    parser.add_argument("--windows", type=float, nargs="+", default=[1.0, 2.0, 4.0, 10.0], help="seconds (hop: half)")
    parser.add_argument("--chunk", type=float, default=0.064, help="seconds of audio per push (default: %(default)s)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rtf_seconds", type=float, default=120.0, help="stream length of the real-time factor runs (0: none)")
    parser.add_argument("--no_onnx", action="store_true", help="skip ONNX Runtime")
    parser.add_argument("--max_clips", type=int, default=None, help="the first N dev-test clips only (a quick look)")
    parser.add_argument("--out_dir", default="exp/streaming")
    parser.add_argument("--png", default=None, help="also write the figure here (e.g. docs/streaming_demo.png)")
    return parser


def read_devtest(config: dict, max_clips: int | None) -> tuple[list[str], list[np.ndarray], pd.DataFrame, pd.DataFrame]:
    """(clip names, their 16 kHz mono audio, ground truth, durations) of the config's dev-test."""
    data = config["data"]
    folder = Path(data["test_folder"])
    durations = read_durations(data["test_dur"])
    names = sorted(durations["filename"])[:max_clips]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise SystemExit(f"error: {folder / missing[0]} is missing: the 16 kHz dev-test is made by the first "
                         "train_sed.py run of this config (data.test_folder)")
    clips = []
    for name in names:
        audio, rate = sf.read(str(folder / name), dtype="float32", always_2d=True)
        if rate != 16000:
            raise SystemExit(f"error: {folder / name} is at {rate} Hz; data.test_folder must hold the 16 kHz clips")
        clips.append(audio.mean(1))
    durations = durations[durations.filename.isin(names)].reset_index(drop=True)
    truth = read_event_table(data["test_tsv"])
    return names, clips, truth[truth.filename.isin(names)].reset_index(drop=True), durations


def join(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One stream of the clips, each zero-padded to whole frames: (audio, (n_clips,) first samples)."""
    padded = [np.pad(c, (0, -len(c) % FRAME)) for c in clips]
    starts = np.cumsum([0] + [len(c) for c in padded[:-1]])
    return np.concatenate(padded), starts


def run_stream(stream, audio: np.ndarray, chunk: int) -> tuple[np.ndarray, pd.DataFrame, float]:
    """Push ``audio``; (all final frame scores, the events with their ``time`` of return, seconds
    of compute)."""
    scores, tables = [], []
    started = time.perf_counter()
    for first in range(0, len(audio), chunk):
        events = stream.push(audio[first : first + chunk])
        scores.append(stream.last_scores)
        tables.append(events.assign(time=stream.time))
    events = stream.close()
    seconds = time.perf_counter() - started
    scores.append(stream.last_scores)
    tables.append(events.assign(time=stream.time))
    return np.concatenate(scores, axis=1), pd.concat(tables, ignore_index=True), seconds


def clip_scores(scores: np.ndarray, names: list[str], clips: list[np.ndarray], starts: np.ndarray) -> dict[str, np.ndarray]:
    """The stream's frame scores cut back into clips, each its own frame count (one pass's)."""
    return {
        name: scores[:, start // FRAME : start // FRAME + (1 + len(clip) // 256) // 4]
        for name, clip, start in zip(names, clips, starts)
    }


def clip_events(events: pd.DataFrame, names: list[str], clips: list[np.ndarray], starts: np.ndarray) -> pd.DataFrame:
    """Stream events cut at the clip boundaries, in clip time."""
    rows = []
    begins, ends = starts / 16000, (starts + np.array([len(c) for c in clips])) / 16000
    for onset, offset, label in zip(events.onset, events.offset, events.event_label):
        for k in np.flatnonzero((begins < offset) & (ends > onset)):
            rows.append((names[k], max(onset, begins[k]) - begins[k], min(offset, ends[k]) - begins[k], label))
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def realtime_factor(detector: SoundEventDetector, audio: np.ndarray, window: float, chunk: int, threads: int,
                    onnx: Path | None) -> float:
    """Audio seconds per second of compute of one stream over ``audio`` on ``threads`` threads."""
    from desed_task.inference.onnx_runtime import OnnxPipeline

    torch.set_num_threads(threads)
    original = detector.pipeline
    if onnx is not None:
        detector.pipeline = OnnxPipeline(onnx, original, threads=threads)
    try:
        _, _, seconds = run_stream(detector.stream(16000, window=window, hop=window / 2), audio, chunk)
    finally:
        detector.pipeline = original
    return len(audio) / 16000 / seconds


def markdown_table(table: pd.DataFrame) -> str:
    """The table in Markdown, numbers to 3 decimals (real-time factors to 1)."""
    def cell(column: str, value) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.1f}" if column.startswith("rtf") else f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(table.columns, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path, title: str) -> None:
    """Left: PSDS1 and PSDS2 against the mean (and largest) event latency, the offline values
    dashed; right: the mean and largest latency and the bound against the window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streamed = table[table.window != "offline"]
    offline = table[table.window == "offline"].iloc[0]
    fig, (ax, right) = plt.subplots(1, 2, figsize=(10, 4.0), dpi=110)
    for metric, colour in (("psds1", "tab:blue"), ("psds2", "tab:orange")):
        ax.plot(streamed.mean_latency, streamed[metric], "o-", color=colour, label=f"{metric.upper()} (mean latency)")
        ax.plot(streamed.max_latency, streamed[metric], "x:", color=colour, alpha=0.6, label=f"{metric.upper()} (largest latency)")
        ax.axhline(offline[metric], color=colour, ls="--", lw=0.8, label=f"{metric.upper()} offline (clips in one pass)")
        for _, row in streamed.iterrows():
            ax.annotate(f"{row.window} s", (row.mean_latency, row[metric]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("event latency (s of audio after the offset)")
    ax.set_ylabel("PSDS of the streamed scores")
    ax.set_ylim(0, max(0.05, 1.15 * float(np.nanmax(table[["psds1", "psds2"]].to_numpy(dtype=float)))))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    windows = streamed.window.astype(float)
    right.plot(windows, streamed.latency_bound, "k--", label="bound: window + median filter's right half")
    right.plot(windows, streamed.max_latency, "x-", color="tab:red", label="largest")
    right.plot(windows, streamed.mean_latency, "o-", color="tab:green", label="mean")
    right.set_xlabel("window (s), hop half of it")
    right.set_ylabel("event latency (s)")
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = build_parser().parse_args()
    config = load_config(args.conf_file)
    median = int(config["training"]["median_window"])
    names, clips, truth, durations = read_devtest(config, args.max_clips)
    audio, starts = join(clips)
    chunk = max(1, round(args.chunk * 16000))
    torch.set_num_threads(1)  # the accuracy runs: one thread (on a busy machine more threads only wait)
    detector = SoundEventDetector.from_checkpoint(args.checkpoint, model=args.model, window=None)
    print(f"{len(names)} clips, {len(audio) / 16000:.1f} s of stream, chunks of {chunk} samples, median filter {median}", flush=True)

    rows = []
    offline_scores = {name: detector.scores(clip, 16000) for name, clip in zip(names, clips)}
    metrics = evaluate_scores(offline_scores, detector.class_names, truth, durations, median_window=median)
    rows.append({"window": "offline", "hop": "", "latency_bound": np.nan, "mean_latency": np.nan, "max_latency": np.nan,
                 "psds1": metrics["psds1"], "psds2": metrics["psds2"], "f1": metrics["intersection_f1_macro"]})
    print(f"offline: {rows[-1]}", flush=True)

    onnx = None
    tmp = tempfile.TemporaryDirectory()
    if not args.no_onnx:
        from desed_task.export.onnx import export_onnx

        onnx = export_onnx(detector.pipeline, Path(tmp.name) / "model.onnx", detector.class_names, detector.sample_rate,
                           detector.hop_length, detector.net_pooling)
    rtf_audio = audio[: round(args.rtf_seconds * 16000)]
    for window in args.windows:
        torch.set_num_threads(1)
        stream = detector.stream(16000, window=window, hop=window / 2, median_window=median)
        scores, events, _ = run_stream(stream, audio, chunk)
        latency = events.time - events.offset
        metrics = evaluate_scores(clip_scores(scores, names, clips, starts), detector.class_names, truth, durations,
                                  median_window=median)
        f1 = intersection_f1_macro(clip_events(events, names, clips, starts), truth, durations)
        row = {"window": f"{window:g}", "hop": f"{stream.scorer.hop / 16000:g}", "latency_bound": stream.latency_bound,
               "mean_latency": latency.mean(), "max_latency": latency.max(),
               "psds1": metrics["psds1"], "psds2": metrics["psds2"], "f1": f1}
        for threads in args.threads if args.rtf_seconds > 0 else []:
            row[f"rtf_torch_{threads}t"] = realtime_factor(detector, rtf_audio, window, chunk, threads, None)
            if onnx is not None:
                row[f"rtf_onnx_{threads}t"] = realtime_factor(detector, rtf_audio, window, chunk, threads, onnx)
        rows.append(row)
        print(f"window {window:g} s: {row}", flush=True)

    table = pd.DataFrame(rows)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "streaming.tsv", sep="\t", index=False, float_format="%.4g")
    markdown = markdown_table(table)
    (out / "streaming.md").write_text(markdown + "\n")
    print(markdown)
    title = f"{Path(args.checkpoint).name}: {len(names)} dev-test clips streamed (hop = window / 2, median {median})"
    plot(table, out / "streaming.png", title)
    if args.png:
        plot(table, Path(args.png), title)
    tmp.cleanup()


if __name__ == "__main__":
    main()
