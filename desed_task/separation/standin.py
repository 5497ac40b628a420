"""A STAND-IN for the pre-trained separation model, for tests and the demo.

The real model (TDCN++ trained with MixIT on YFCC100M, used by the DCASE 2021 SSEP + SED
baseline) cannot be downloaded here; it comes from::

    gsutil -m cp -r gs://gresearch/sound_separation/yfcc100m_mixit_model_checkpoint .

This module builds a tiny TensorFlow 1 graph with the same contract - input
``input_audio/receiver_audio:0`` (batch, 1, samples) float32, output ``denoised_waveforms:0``
(batch, sources, samples) float32 - and saves it the same way, as a meta graph
``inference.meta`` and a checkpoint ``model.ckpt-3547330.{index,data-00000-of-00001}``, so
that the whole loading path (import_meta_graph, Saver.restore, tensor lookup) runs for real.

It does NOT separate anything meaningful: each "source" is the mixture through a random FIR
filter (a fixed-seed 1-D convolution) times a gain, then projected so that the sources sum to
the mixture (the real model enforces the same mixture consistency). The graph holds a
constant op named `STANDIN_separation_model_notice`; `TFSeparationModel` warns when it sees it.

Usage::

    python -m desed_task.separation.standin --out_dir exp/standin_separation_model
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from desed_task.command_line import run_command
from desed_task.separation.model import GRAPH_NAME, STANDIN_MARKER_OP, import_tensorflow

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "model.ckpt"
CHECKPOINT_STEP = 3547330  # the step of the published checkpoint, so that file names match
FILTER_TAPS = 33


def build_standin_model(
    out_dir: str | Path, n_sources: int = 4, *, seed: int = 0
) -> tuple[Path, Path]:
    """Build and save the STAND-IN separation model.

    Args:
        out_dir: created if needed; gets ``inference.meta``, ``model.ckpt-3547330.*`` and
            TensorFlow's ``checkpoint`` index file.
        n_sources: number of output sources.
        seed: seed of the filter and gain initial values (same seed, same files' values).

    Returns:
        (graph_path, checkpoint_prefix), as the config keys ``sep_graph`` / ``sep_checkpoint``
        expect them.
    """
    if n_sources < 1:
        raise ValueError(f"n_sources must be >= 1, got {n_sources}")
    tf = import_tensorflow()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    taps = (rng.standard_normal((FILTER_TAPS, 1, n_sources)) / np.sqrt(FILTER_TAPS)).astype(
        np.float32
    )
    gains = rng.uniform(0.5, 1.5, n_sources).astype(np.float32)

    graph = tf.Graph()
    with graph.as_default():
        tf.constant(
            "STAND-IN separation model: not a real separator; the real one is "
            "gs://gresearch/sound_separation/yfcc100m_mixit_model_checkpoint",
            name=STANDIN_MARKER_OP,
        )
        with tf.name_scope("input_audio"):
            mixture = tf.placeholder(tf.float32, shape=(None, 1, None), name="receiver_audio")
        with tf.variable_scope("standin"):
            filterbank = tf.get_variable("filterbank", initializer=taps)  # (taps, 1, sources)
            source_gain = tf.get_variable("source_gain", initializer=gains)  # (sources,)
        signal = tf.transpose(mixture, (0, 2, 1))  # (batch, samples, 1)
        filtered = tf.nn.conv1d(signal, filterbank, stride=1, padding="SAME")
        estimates = tf.transpose(filtered * source_gain, (0, 2, 1))  # (batch, sources, samples)
        # mixture consistency (uniform weights): the sources add up to the mixture
        residual = mixture - tf.reduce_sum(estimates, axis=1, keepdims=True)
        estimates = estimates + residual / float(n_sources)
        tf.identity(estimates, name="denoised_waveforms")

        saver = tf.train.Saver()
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            prefix = saver.save(
                session,
                str(out_dir / CHECKPOINT_NAME),
                global_step=CHECKPOINT_STEP,
                write_meta_graph=False,
            )
        graph_path = out_dir / GRAPH_NAME
        saver.export_meta_graph(str(graph_path))
    log.info("STAND-IN separation model (%d sources) written to %s", n_sources, out_dir)
    return graph_path, Path(prefix)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: build the stand-in and print the two config values; the exit
    status (`run_command`)."""
    parser = argparse.ArgumentParser(
        description="Build the STAND-IN separation model (same tensors and file names as the "
        "real YFCC100M MixIT checkpoint; separates nothing meaningful)."
    )
    parser.add_argument("--out_dir", type=Path, required=True)
    parser.add_argument("--n_sources", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def build() -> None:
        graph_path, prefix = build_standin_model(args.out_dir, args.n_sources, seed=args.seed)
        print(f"sep_graph: {graph_path}\nsep_checkpoint: {prefix}")

    return run_command(build)


if __name__ == "__main__":
    sys.exit(main())
