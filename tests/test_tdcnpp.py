"""TDCN++ in PyTorch against Google's own TensorFlow graph (the random-weight golden of
../shared/reference/tdcnpp2021, built by the official code): conversion through
``python -m desed_task.separation convert``, both inputs and every intermediate tensor of
io.npz, any batch and length, the file format, and refused checkpoints."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from desed_task.nnet import build_separation_network
from desed_task.nnet.tdcnpp import TDCNpp, num_frames
from desed_task.separation import load_separator, save_separator
from desed_task.separation.cli import main as separation_cli
from desed_task.separation.errors import ModelNotFound
from desed_task.separation.separator_file import FORMAT_TAG, SeparatorFileError
from desed_task.separation.tf_checkpoint import read_index, read_tensor

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "reference" / "tdcnpp2021"
TOLERANCE = 1e-5
# io.npz's intermediate tensors of input_1 -> (our name, how to bring TF's layout to ours)
TAPS = {
    "tap_1_encoder_coeffs": ("encoder_coeffs", lambda a: a[:, 0]),  # (1, 1, F, 256)
    "tap_1_tdcn_output": ("tdcn_output", lambda a: a),  # (1, F, 256)
    "tap_1_mix_weights": ("mix_weights", lambda a: a),  # (1, 8)
    "tap_1_separated_before_consistency": ("separated_before_consistency", lambda a: a[:, :, 0]),
}


def golden_dir() -> Path:
    if not (GOLDEN / "io.npz").is_file():
        pytest.skip("../shared/reference/tdcnpp2021 is absent (reference data is only beside the repo in CI)")
    return GOLDEN


def max_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    """Largest absolute difference, relative to the reference's largest magnitude when that is
    above 1 (the TDCN output reaches 9.3: float32 rounding of 32 residual blocks)."""
    assert tuple(ours.shape) == reference.shape
    scale = max(1.0, float(np.abs(reference).max()))
    return float(np.abs(ours.detach().numpy().astype(np.float64) - reference).max()) / scale


@pytest.fixture(scope="module")
def io() -> dict[str, np.ndarray]:
    return dict(np.load(golden_dir() / "io.npz"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The golden converted by the real command line."""
    out = tmp_path_factory.mktemp("converted") / "separation.pt"
    assert separation_cli(["convert", "--tf_model", str(golden_dir()), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def model(converted: Path) -> TDCNpp:
    return load_separator(converted)


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_converted_model_separates_as_tensorflow(model, io, index) -> None:
    mixture = torch.from_numpy(io[f"input_{index}"][:, 0])  # (1, samples): 10 s and 48123 samples
    with torch.no_grad():
        sources = model(mixture)
    assert sources.dtype == torch.float32
    assert max_error(sources, io[f"output_{index}"]) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False], ids=["fused", "plain_ops"])
def test_every_intermediate_tensor_is_tensorflows(model, io, fast) -> None:
    with torch.no_grad():
        stages = model.intermediates(torch.from_numpy(io["input_1"][:, 0]), fast=fast)
    for tap, (name, to_ours) in TAPS.items():
        assert max_error(stages[name], to_ours(io[tap])) <= TOLERANCE, name
    assert max_error(stages["separated"], io["output_1"]) <= TOLERANCE
    assert torch.allclose(stages["mix_weights"].sum(-1), torch.ones(1))


def test_any_batch_and_length(model) -> None:
    rng = np.random.default_rng(0)
    clips = torch.from_numpy(rng.uniform(-0.5, 0.5, (3, 1234)).astype(np.float32))
    with torch.no_grad():
        batched = model(clips)
        alone = torch.cat([model(clip[None]) for clip in clips])
        for samples in (1, 20, 21, 39, 40, 41, 97):  # 1 to 3 frames; TF makes 0 below 21
            mixture = clips[:2, :samples]
            sources = model(mixture)
            assert sources.shape == (2, 8, samples) and torch.isfinite(sources).all()
            assert torch.allclose(sources.sum(1), mixture, atol=1e-6)  # mixture consistency
    assert batched.shape == (3, 8, 1234)
    assert float((batched - alone).abs().max()) <= TOLERANCE
    assert num_frames(48123, 40, 20) == 2406 and num_frames(160000, 40, 20) == 7999


def test_gradient_path_equals_inference_path(model) -> None:
    clip = torch.from_numpy(np.random.default_rng(1).uniform(-0.5, 0.5, (1, 3000)).astype(np.float32))
    with torch.no_grad():
        inference = model(clip)
    clip.requires_grad_(True)
    trained = model(clip)  # PyTorch's matmul, autograd through every op
    trained.pow(2).sum().backward()
    assert clip.grad is not None and torch.isfinite(clip.grad).all()
    assert float((trained.detach() - inference).abs().max()) <= TOLERANCE


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_converted_file_loads_weights_only_and_says_where_it_came_from(converted, model) -> None:
    payload = torch.load(converted, map_location="cpu", weights_only=True)
    assert payload["format"] == FORMAT_TAG
    assert payload["hparams"] == TDCNpp().hparams == model.hparams
    assert set(payload["state_dict"]) == set(TDCNpp().state_dict())
    golden = golden_dir()
    assert payload["source"]["checkpoint"] == "model.ckpt-1"
    assert payload["source"]["files"] == {
        name: sha256(golden / name)
        for name in ("inference.meta", "model.ckpt-1.index", "model.ckpt-1.data-00000-of-00001")
    }
    assert sum(p.numel() for p in model.parameters()) == 9_067_009  # summary.json's count
    assert not model.training and model.source == payload["source"]


def test_save_and_load_round_trip_any_hyper_parameters(tmp_path: Path) -> None:
    small = build_separation_network({"num_sources": 3, "num_coeffs": 16, "bottleneck": 8,
                                      "conv_channels": 12, "num_dilations": 3, "num_repeats": 2})
    save_separator(small, tmp_path / "small.pt", {"made_by": "test"})
    loaded = load_separator(tmp_path / "small.pt")
    clip = torch.randn(2, 777)
    with torch.no_grad():
        assert torch.equal(loaded(clip), small.eval()(clip))
    assert loaded.hparams == small.hparams and loaded.source == {"made_by": "test"}


@pytest.mark.parametrize("content", ["text", "foreign_dict", "bad_weights", "pickled_code"])
def test_a_wrong_file_is_refused_in_one_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "separation.pt"
    if content == "text":
        path.write_text("model_checkpoint_path: 'model.ckpt-1'\n")
    elif content == "foreign_dict":  # e.g. a SED checkpoint
        torch.save({"state_dict": {}, "hyper_parameters": {}}, path)
    elif content == "bad_weights":
        save_separator(TDCNpp(num_sources=2, num_coeffs=8, bottleneck=8, conv_channels=8,
                              num_dilations=1, num_repeats=1), path, {})
        payload = torch.load(path, weights_only=True)
        payload["hparams"]["num_sources"] = 3
        torch.save(payload, path)
    else:
        torch.save({"format": FORMAT_TAG, "hook": Path("x")}, path)
    with pytest.raises(SeparatorFileError) as err:
        load_separator(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert "python -m desed_task.separation convert" in str(err.value)
    with pytest.raises(ModelNotFound, match="convert"):
        load_separator(tmp_path / "absent.pt")


# --- refused checkpoints: the golden's variables written again with TensorFlow, tampered ---


def write_checkpoint(prefix: Path, tensors: dict[str, np.ndarray]) -> None:
    """A TF1-format checkpoint with exactly these variable names (TensorFlow's SaveV2)."""
    tf = pytest.importorskip("tensorflow", reason="writing a tampered checkpoint needs TensorFlow")
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[name]) for name in names])
    (prefix.parent / "checkpoint").write_text(f'model_checkpoint_path: "{prefix.name}"\n')
    shutil.copy(GOLDEN / "inference.meta", prefix.parent / "inference.meta")


@pytest.fixture(scope="module")
def golden_tensors() -> dict[str, np.ndarray]:
    prefix = golden_dir() / "model.ckpt-1"
    entries, shards = read_index(prefix)
    return {name: read_tensor(prefix, entry, shards) for name, entry in entries.items()}


def convert_cli(folder: Path, capsys) -> tuple[int, str]:
    status = separation_cli(["convert", "--tf_model", str(folder), "--out", str(folder / "out.pt")])
    return status, capsys.readouterr().err


def test_training_bookkeeping_is_ignored(tmp_path: Path, golden_tensors, io, capsys) -> None:
    """The real checkpoint comes from training: global step, Adam slots and beta powers."""
    tensors = dict(golden_tensors)
    tensors["global_step"] = np.array(3547330, dtype=np.int64)
    tensors["beta1_power"] = np.array(0.9, dtype=np.float32)
    tensors["beta2_power"] = np.array(0.999, dtype=np.float32)
    for name in ("dense/kernel", "mix_weights/dense/kernel"):
        tensors[f"{name}/Adam"] = np.zeros_like(golden_tensors[name])
        tensors[f"{name}/Adam_1"] = np.ones_like(golden_tensors[name])
    write_checkpoint(tmp_path / "model.ckpt-3547330", tensors)
    assert convert_cli(tmp_path, capsys)[0] == 0
    with torch.no_grad():
        sources = load_separator(tmp_path / "out.pt")(torch.from_numpy(io["input_1"][:, 0]))
    assert max_error(sources, io["output_1"]) <= TOLERANCE


@pytest.mark.parametrize("tamper", ["unknown", "missing", "mis_shaped"])
def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_variables(
    tmp_path: Path, golden_tensors, capsys, tamper: str
) -> None:
    tensors = dict(golden_tensors)
    named = {
        "unknown": "improved_tdcn/conv_block_32/tdcn_block/dense1/dense/kernel",
        "missing": "improved_tdcn/conv_block_7/tdcn_block/timeconv/separable_conv/bias",
        "mis_shaped": "mix_weights/dense/kernel",
    }[tamper]
    if tamper == "unknown":
        tensors[named] = np.zeros((256, 512), np.float32)
    elif tamper == "missing":
        del tensors[named]
    else:
        tensors[named] = np.zeros((256, 4), np.float32)
    write_checkpoint(tmp_path / "model.ckpt-1", tensors)
    status, err = convert_cli(tmp_path, capsys)
    assert status == 2 and not (tmp_path / "out.pt").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"{tamper.replace('_', '-')} variable" in lines[0] and named in lines[0]


def test_a_folder_without_checkpoint_is_refused(tmp_path: Path, capsys) -> None:
    status, err = convert_cli(tmp_path, capsys)
    assert status == 2 and err.startswith("error: ") and "--tf_checkpoint" in err
    (tmp_path / "model.ckpt-1.index").write_bytes(b"not a table" * 10)
    status = separation_cli(["convert", "--tf_model", str(tmp_path), "--out", str(tmp_path / "o.pt"),
                             "--tf_checkpoint", str(tmp_path / "model.ckpt-1")])
    err = capsys.readouterr().err
    assert status == 2 and "not a TensorFlow (V2) checkpoint index" in err and len(err.strip().splitlines()) == 1


def test_the_checkpoint_reader_reads_what_tensorflow_reads(golden_tensors) -> None:
    tf = pytest.importorskip("tensorflow", reason="the comparison needs TensorFlow")
    reader = tf.train.load_checkpoint(str(GOLDEN / "model.ckpt-1"))
    shapes = reader.get_variable_to_shape_map()
    assert set(shapes) == set(golden_tensors)
    for name, value in golden_tensors.items():
        assert np.array_equal(reader.get_tensor(name), value), name


def test_exports_to_onnx_for_any_batch_and_length(tmp_path: Path) -> None:
    """Tracing takes the plain-ops path; the graph keeps the frame count symbolic."""
    ort = pytest.importorskip("onnxruntime", reason="the export check needs ONNX Runtime (the export extra)")
    pytest.importorskip("onnx", reason="the export check needs onnx (the export extra)")
    torch.manual_seed(0)
    small = TDCNpp(num_sources=3, num_coeffs=16, bottleneck=8, conv_channels=12, num_dilations=3,
                   num_repeats=2).eval()
    with torch.no_grad():
        for param in small.parameters():  # away from the constant initial values
            param.add_(0.01 * torch.randn_like(param))
    path = tmp_path / "tdcnpp.onnx"
    torch.onnx.export(small, (torch.randn(2, 1000),), str(path), input_names=["audio"],
                      output_names=["sources"], opset_version=17, dynamo=False,
                      dynamic_axes={"audio": {0: "batch", 1: "samples"}, "sources": {0: "batch", 2: "samples"}})
    session = ort.InferenceSession(str(path))
    for batch, samples in ((1, 48123), (3, 1000), (2, 41), (1, 21)):
        mixture = torch.randn(batch, samples)
        with torch.no_grad():
            expected = small(mixture).numpy()
        sources = session.run(None, {"audio": mixture.numpy()})[0]
        assert sources.shape == expected.shape
        assert float(np.abs(sources - expected).max()) <= TOLERANCE
