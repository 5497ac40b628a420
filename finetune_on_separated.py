"""Fine-tune a pre-trained SED model on separated sources and test it (DCASE 2021 SSEP + SED).

    python run_separation.py --conf_file confs/sep+sed.yaml           # step 1: the _sep folders
    python finetune_on_separated.py --conf_file confs/sep+sed.yaml    # step 2: this script
    python finetune_on_separated.py --test_from_checkpoint CKPT       # test a fine-tuned model
    python run_separation.py --conf_file confs/demo_sep+sed.yaml && \\
        python finetune_on_separated.py --conf_file confs/demo_sep+sed.yaml   # the demo
Options as train_sed.py; the network is the ensemble of `desed_task.training.finetune`.
"""

from desed_task.training.cli import main
from desed_task.training.finetune import build_ensemble_student

if __name__ == "__main__":
    main(
        "Fine-tune the DCASE 2021 SED baseline on separated sources (SSEP + SED) and test it.",
        default_conf="./confs/sep+sed.yaml",
        default_log_dir="./exp/2021_baseline_sep_sed",
        build_student=build_ensemble_student,
        separated_sources=True,
    )
