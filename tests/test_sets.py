"""The table of sets (desed_task.sets): the orders the recipes' scripts kept, and the names the
config, the embeddings files and the demo dataset use, as they were before the table."""

from dataclasses import fields

from desed_task.config import SCHEMA
from desed_task.data_generation.demo import DemoLayout, DemoSizes
from desed_task.sets import (
    BATCH_PARTS,
    SETS,
    demo_sets,
    embedded_sets,
    separated_sets,
    sets_read_in,
)


def test_the_orders_of_the_recipes_are_kept():
    assert BATCH_PARTS == ("synth", "weak", "unlabeled")  # training.batch_size's order (2021)
    assert [s.name for s in sets_read_in("fit")] == ["synth", "weak", "unlabeled", "synth_val", "test"]
    assert [s.name for s in sets_read_in("fit", {"strong_real": True})] == [
        "synth", "weak", "unlabeled", "synth_val", "strong", "test"]
    assert [s.name for s in sets_read_in("test")] == ["test"]
    assert [s.name for s in sets_read_in("eval")] == ["eval"]
    # 2021's run_separation.py, then the evaluation set when on disk
    assert [s.name for s in separated_sets()] == ["synth", "synth_val", "weak", "unlabeled", "test", "eval"]
    assert [s.embeddings_file for s in embedded_sets()] == [  # the 2023 extraction
        "synth_train", "weak_train", "strong_train", "unlabeled_train", "synth_val", "weak_val", "devtest", "eval"]


def test_ranks_are_places():
    separated = [s.separation_rank for s in SETS if s.separation_rank is not None]
    assert sorted(separated) == list(range(len(separated)))
    assert sorted(s.embeddings_rank for s in SETS) == list(range(len(SETS)))
    assert len({s.name for s in SETS}) == len(SETS)


def test_config_keys_of_the_sets():
    data = SCHEMA["data"]
    for name in ("synth", "weak", "unlabeled", "synth_val", "test", "eval", "strong"):
        assert {f"{name}_folder", f"{name}_folder_16k", f"{name}_folder_44k", f"{name}_folder_sep"} <= set(data)
    tables = {k for k in data if k.endswith(("_tsv", "_dur"))}
    assert tables == {"synth_tsv", "strong_tsv", "weak_tsv", "synth_val_tsv", "synth_val_dur", "test_tsv", "test_dur"}
    assert "weak_val_folder" not in data  # the held-out weak clips read the weak folder


def test_demo_sets_name_the_demo_sizes_and_layout():
    names = [s.demo_name for s in demo_sets()]
    assert names == ["synthetic_train", "weak", "unlabel_in_domain", "synthetic_validation", "validation", "eval"]
    assert [f.name for f in fields(DemoSizes)][: len(names)] == names
    properties = {n for n, v in vars(DemoLayout).items() if isinstance(v, property)}
    for spec in demo_sets():
        assert spec.demo_name in properties
        assert (f"{spec.demo_name}_tsv" in properties) == spec.tsv
        assert (f"{spec.demo_name}_durations" in properties) == spec.durations
