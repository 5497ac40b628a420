import copy
from pathlib import Path

import pytest
import yaml

from desed_task.config import ConfigError, load_config, merge_for_test, validate_config

REPO = Path(__file__).resolve().parents[1]


def _sed() -> dict:
    return yaml.safe_load((REPO / "confs" / "sed.yaml").read_text())


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "confs").glob("*.yaml")))
def test_shipped_configs_are_valid(name):
    load_config(REPO / "confs" / name)


def test_sed_yaml_holds_the_2021_values():
    c = load_config(REPO / "confs" / "sed.yaml")
    t = c["training"]
    assert t["batch_size"] == [12, 12, 24] and t["batch_size_val"] == 24
    assert (t["const_max"], t["n_epochs_warmup"], t["n_epochs"], t["early_stop_patience"]) == (2, 50, 200, 200)
    assert (t["median_window"], t["n_test_thresholds"], t["ema_factor"], t["weak_split"], t["seed"]) == (7, 50, 0.999, 0.9, 42)
    assert t["mixup"] == "soft" and t["self_sup_loss"] == "mse" and t["obj_metric_synth_type"] == "intersection"
    assert c["opt"]["lr"] == 0.001
    assert c["scaler"] == {"statistic": "instance", "normtype": "minmax", "dims": [1, 2], "savepath": "./scaler.ckpt"}
    assert c["net"]["nb_filters"] == [16, 32, 64, 128, 128, 128, 128]


def test_unknown_key_is_refused_with_its_name():
    c = _sed()
    c["training"]["batchsize"] = 3
    with pytest.raises(ConfigError, match="training.batchsize"):
        validate_config(c)


@pytest.mark.parametrize("value", ["psds", "collar"])
def test_obj_metric_synth_type_takes_the_2021_values_only(value):
    for accepted in ("intersection", "event", None):
        c = _sed()
        c["training"]["obj_metric_synth_type"] = accepted
        validate_config(c)
    c = _sed()
    c["training"]["obj_metric_synth_type"] = value  # 2021: NotImplementedError at validation
    with pytest.raises(ConfigError, match="obj_metric_synth_type' must be intersection, event or empty"):
        validate_config(c)


def test_ensemble_keys_are_checked():
    c = _sed()
    c["training"].update(ensemble_mixture_input="mixture", ensemble_mixture_dropout=False, ensemble_q_clamp=True)
    validate_config(c)
    c["training"]["ensemble_mixture_input"] = "sources"
    with pytest.raises(ConfigError, match="ensemble_mixture_input' must be sum_of_sources"):
        validate_config(c)


def test_wrong_type_is_refused_with_its_name():
    c = _sed()
    c["opt"]["lr"] = "fast"
    with pytest.raises(ConfigError, match="opt.lr"):
        validate_config(c)
    c = _sed()
    c["training"]["batch_size"] = [12, "12", 24]
    with pytest.raises(ConfigError, match="training.batch_size"):
        validate_config(c)


def test_missing_key_and_malformed_yaml(tmp_path):
    c = _sed()
    del c["training"]["seed"]
    with pytest.raises(ConfigError, match="training.seed"):
        validate_config(c)
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)


def test_16k_alias_and_test_merge():
    c = _sed()
    c["data"]["weak_folder_16k"] = c["data"].pop("weak_folder")
    out = validate_config(copy.deepcopy(c))
    assert out["data"]["weak_folder"].endswith("weak_16k/")
    current = validate_config(_sed())
    current["data"]["test_folder"] = "elsewhere/"
    merged = merge_for_test(out, current)
    assert merged["data"]["test_folder"] == "elsewhere/" and merged["net"] == out["net"]
    # how the outputs are decoded is a setting of the test, not of the checkpoint
    out["training"]["clip_events_to_durations"] = True
    current["training"]["clamp_events_to_audio_max_len"] = False
    merged = merge_for_test(out, current)
    assert "clip_events_to_durations" not in merged["training"]
    assert merged["training"]["clamp_events_to_audio_max_len"] is False


def test_testing_a_2023_checkpoint_takes_the_embeddings_and_beats_paths_of_the_current_config():
    trained = load_config(REPO / "confs" / "pretrained.yaml")
    current = load_config(REPO / "confs" / "pretrained.yaml")
    current["pretrained"].update(extracted_embeddings_dir="/data/emb", checkpoint="/models/BEATs.pt")
    current["net"]["embedding_size"] = 48  # the network stays the checkpoint's
    merged = merge_for_test(trained, current)
    assert merged["pretrained"]["extracted_embeddings_dir"] == "/data/emb"
    assert merged["pretrained"]["checkpoint"] == "/models/BEATs.pt"
    assert merged["net"] == trained["net"] and merged["pretrained"]["model"] == "beats"
    # a config without a pretrained: section (e.g. confs/sed.yaml) leaves the checkpoint's
    assert merge_for_test(trained, _sed())["pretrained"] == trained["pretrained"]


def test_testing_an_ssep_checkpoint_takes_the_separation_model_of_the_current_config():
    trained = load_config(REPO / "confs" / "sep+sed.yaml")
    current = load_config(REPO / "confs" / "sep+sed.yaml")
    current["training"].update(sep_model="/models/separation.pt", sep_graph=None, sep_checkpoint=None)
    current["separation"] = {"backend": "tensorflow", "batch_size": 4}
    merged = merge_for_test(trained, current)
    assert merged["training"]["sep_model"] == "/models/separation.pt"
    assert "sep_graph" not in merged["training"] and "sep_checkpoint" not in merged["training"]
    assert merged["separation"] == {"backend": "tensorflow", "batch_size": 4}
    # a config naming no separation model (e.g. confs/sed.yaml) leaves the checkpoint's
    merged = merge_for_test(trained, _sed())
    assert merged["training"]["sep_model"] == trained["training"]["sep_model"] == "./separation.pt"
    assert merged["separation"] == trained["separation"]


def test_separation_backend_and_batch_size_are_checked():
    from desed_task.separation.backend import separation_settings

    c = load_config(REPO / "confs" / "sep+sed.yaml")
    assert c["separation"] == {"backend": "pytorch", "batch_size": None}
    with pytest.raises(ConfigError, match="x.yaml: 'separation.backend' must be pytorch or tensorflow"):
        separation_settings({**copy.deepcopy(c), "separation": {"backend": "onnx"}}, "x.yaml")
    with pytest.raises(ConfigError, match="'separation.batch_size' must be >= 1"):
        validate_config({**copy.deepcopy(c), "separation": {"batch_size": 0}}, "x.yaml")


def test_pretrained_yaml_holds_the_2023_values():
    c = load_config(REPO / "confs" / "pretrained.yaml")
    sed = load_config(REPO / "confs" / "sed.yaml")
    assert c["training"]["batch_size"] == [24, 24, 48] and c["training"]["batch_size_val"] == 48
    assert c["pretrained"] == {"model": "beats", "e2e": False, "freezed": True, "extracted_embeddings_dir": "./embeddings",
                               "checkpoint": "./pretrained_models/BEATs_iter3_plus_AS2M.pt"}
    assert {k: v for k, v in c["net"].items() if k not in sed["net"]} == {
        "use_embeddings": True, "embedding_size": 768, "embedding_type": "frame", "aggregation_type": "pool1d"}
    assert {k: v for k, v in c["net"].items() if k in sed["net"]} == sed["net"]
    same = ("const_max", "n_epochs_warmup", "n_epochs", "early_stop_patience", "median_window", "ema_factor",
            "self_sup_loss", "weak_split", "seed", "mixup", "obj_metric_synth_type")
    assert all(c["training"][k] == sed["training"][k] for k in same)
    assert c["training"]["mixup_embeddings"] is False and c["training"]["strong_real"] is False
    assert c["opt"].pop("first_step_at_lr") is True  # 2023 (tests/test_recipe_2023.py)
    assert (c["opt"], c["feats"], c["scaler"]) == (sed["opt"], sed["feats"], sed["scaler"])
