"""Train and test the DCASE 2021 Task 4 SED baseline (CRNN mean teacher).

    python train_sed.py                                   # real DESED, confs/sed.yaml
    python train_sed.py --conf_file confs/demo.yaml       # built-in demo, no download
    python train_sed.py --test_from_checkpoint CKPT       # test a trained model
See docs/training.md for every option.
"""

from desed_task.training.cli import main

if __name__ == "__main__":
    main(
        "Train and test the DCASE 2021 Task 4 CRNN mean-teacher baseline.",
        default_conf="./confs/sed.yaml",
        default_log_dir="./exp/2021_baseline",
    )
