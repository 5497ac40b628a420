"""Speed of BEATs embedding extraction (``python -m desed_task.embeddings``), clips per second.

A BEATs of the size of the released ``BEATs_iter3_plus_AS2M.pt`` (patch embedding 512,
12 layers of width 768, 12 heads, FFN 3072, deep norm, gated relative position bias with 320
buckets up to 800, convolutional position 128/16; random weights: the cost does not depend on
them) embeds --clips clips of 10 s of noise written as 16 kHz wavs, through the extraction loop
(read, pad, fbank, encoder, HDF5 rows). Reports the whole loop and the encoder forward alone.

    python benchmarks/bench_embeddings.py [--clips 32] [--batch_size 8] [--device cpu|cuda] [--threads N]
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

from desed_task.embeddings.extract import extract_folder  # noqa: E402
from desed_task.nnet.beats import BEATs, BEATsConfig  # noqa: E402

ITER3_CFG = dict(
    input_patch_size=16, embed_dim=512, conv_bias=False, encoder_layers=12, encoder_embed_dim=768,
    encoder_ffn_embed_dim=3072, encoder_attention_heads=12, activation_fn="gelu",
    layer_wise_gradient_decay_ratio=0.6, layer_norm_first=False, deep_norm=True, dropout=0.0,
    attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.05, dropout_input=0.0,
    conv_pos=128, conv_pos_groups=16, relative_position_embedding=True, num_buckets=320,
    max_distance=800, gru_rel_pos=True, finetuned_model=False,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    model = BEATs(BEATsConfig.from_dict(ITER3_CFG)).eval().to(device)
    n_params = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        for i in range(args.clips):
            sf.write(str(folder / f"clip_{i:04d}.wav"), (0.05 * rng.standard_normal(160000)).astype(np.float32), 16000)

        batch = torch.from_numpy((0.05 * rng.standard_normal((args.batch_size, 160000))).astype(np.float32)).to(device)
        with torch.inference_mode():
            model.embeddings(batch)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.embeddings(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            forward = time.perf_counter() - start

        start = time.perf_counter()
        report = extract_folder(model, folder, Path(tmp) / "E.hdf5", checkpoint_sha256="benchmark",
                                device=device, batch_size=args.batch_size, progress=False)
        loop = time.perf_counter() - start
    assert report.extracted == args.clips
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"BEATs iter3 size ({n_params / 1e6:.1f} M parameters), {name}, batch {args.batch_size}")
    print(f"encoder forward: {args.batch_size / forward:.2f} clips/s ({forward / args.batch_size * 1000:.0f} ms per 10 s clip)")
    print(f"extraction loop: {args.clips / loop:.2f} clips/s ({args.clips} clips in {loop:.1f} s)")


if __name__ == "__main__":
    main()
