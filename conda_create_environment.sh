#!/usr/bin/env bash
# A conda environment for desed_task (the 2021 recipe shipped such a script). Run line by line
# if something fails. pip inside the environment does the rest, as scripts/install.sh does.
set -euo pipefail
ENV_NAME="${1:-dcase2021}"
conda create -y -n "$ENV_NAME" python=3.11
eval "$(conda shell.bash hook)"
conda activate "$ENV_NAME"
# scaper's soxbindings compiles against libsox: take sox from conda-forge when apt is not an option
conda install -y -c conda-forge sox libsndfile
pip install "torch==2.13.0"           # choose the CUDA build for your machine from pytorch.org
pip install -e ".[demo,datagen,separation,test]"
