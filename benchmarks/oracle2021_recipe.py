"""The 2021 recipe's side of ``benchmarks/oracle2021.py``, run by the oracle environment's Python.

    ORACLE_OUT=DIR ORACLE_REF_PARENT=COPY python oracle2021_recipe.py RUN_OFFICIAL <train_sed.py arguments>

Runs ``../shared/oracle2021/run_official.py`` (the recipe with its recorders) and, just before it
hands over to the recipe's ``train_sed.py``, adds read-only recorders (no random draw, no numeric
change) that write under ``$ORACLE_OUT``, in the project's record format:

- ``states_step.pt``: the student's and teacher's state dicts (parameters and buffers, batch-norm
  statistics included, by name) after each of the first ``$DIAG_PARAM_STEPS`` steps;
- ``weights_train_end.pt`` / ``weights_test.pt``: both state dicts when training ends and as
  tested (the best checkpoint, loaded by the recipe);
- ``modules.json``: the file each imported module came from (``desed_task``, ``local``, and
  the versions of torch and pytorch_lightning), written when training starts.

It imports nothing of this project: it runs in the recipe's environment, beside its code.
"""

import json
import os
import runpy
import sys


def _named(module) -> dict:
    """Both models' state dicts, cloned: {"student": {name: tensor}, "teacher": {...}}."""
    return {model: {k: v.detach().clone() for k, v in getattr(module, f"sed_{model}").state_dict().items()}
            for model in ("student", "teacher")}


def _modules() -> dict:
    """Module name -> the file it was imported from, for the recipe's packages and the frameworks."""
    import pytorch_lightning
    import torch

    origins = {name: getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), None)
               for name, module in list(sys.modules.items())
               if name.split(".")[0] in ("desed_task", "local")}
    origins["version:torch"] = torch.__version__
    origins["version:pytorch_lightning"] = pytorch_lightning.__version__
    return origins


def install(out: str, n_states: int) -> None:
    """Wrap the recipe's LightningModule hooks (after run_official.py's own wrappers)."""
    import local.sed_trainer as st
    import torch

    cls = st.SEDTask4_2021
    states: list = []
    batch_end, train_start = cls.on_train_batch_end, cls.on_train_start
    train_end, test_start = cls.on_train_end, cls.on_test_start

    def batch_end_recorded(self, *args, **kwargs):
        if len(states) < n_states:  # before run_official's hook, which may end the process
            states.append(_named(self))
            torch.save(states, os.path.join(out, "states_step.pt"))
        return batch_end(self, *args, **kwargs)

    def train_start_recorded(self):
        with open(os.path.join(out, "modules.json"), "w") as file:
            json.dump(_modules(), file, indent=1)
        return train_start(self)

    def train_end_recorded(self):
        torch.save(_named(self), os.path.join(out, "weights_train_end.pt"))
        return train_end(self)

    def test_start_recorded(self):
        torch.save(_named(self), os.path.join(out, "weights_test.pt"))
        return test_start(self)

    cls.on_train_batch_end, cls.on_train_start = batch_end_recorded, train_start_recorded
    cls.on_train_end, cls.on_test_start = train_end_recorded, test_start_recorded


def main() -> None:
    run_official = sys.argv[1]
    sys.argv = [run_official] + sys.argv[2:]
    out, n_states = os.environ["ORACLE_OUT"], int(os.environ.get("DIAG_PARAM_STEPS", "0"))
    run_path = runpy.run_path

    def run_path_hooked(path, *args, **kwargs):
        if os.path.basename(str(path)) == "train_sed.py":
            install(out, n_states)
        return run_path(path, *args, **kwargs)

    runpy.run_path = run_path_hooked  # run_official.py ends with runpy.run_path(<recipe>/train_sed.py)
    run_path(run_official, run_name="__main__")


if __name__ == "__main__":
    main()
