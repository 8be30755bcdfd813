#!/usr/bin/env bash
# Issue 3 quality targets: DCGAN on MNIST (evaluator-feature and TF-Inception FID/KID, 5,000 samples
# against the 10,000 test images) and DCGAN on Twemoji at 64x64 (KID/FID against the 3,616 training
# images). Each line is the exact command whose numbers BENCHMARKS.md reports; EPOCHS_* override
# lengths. A run stopped early continues with the same command plus --resume in place of --overwrite.
# TF-Inception costs ~0.3 s per image per core here: the MNIST test features (10,000 images) are
# computed once and cached in ~/.cache/genlab/features.
set -euo pipefail
cd "$(dirname "$0")/.."
EM=${EPOCHS_MNIST:-5}; EE=${EPOCHS_EMOJI:-30}
EVAL="eval.inception=true eval.num_samples=5000"
mkdir -p runs
(
  # the Radford preset as shipped in configs/dcgan-mnist.yaml (f = 64, 32x32)
  python -m genlab train configs/dcgan-mnist.yaml train.epochs=$EM train.num_threads=1 train.progress=false --run-dir runs/bench-dcgan-mnist --overwrite
  python -m genlab eval runs/bench-dcgan-mnist $EVAL
) > runs/bench-dcgan-mnist.log 2>&1 &
(
  # the seed report's DCGAN layer stack at MNIST's 32x32x1 (dense layers follow the image size)
  python -m genlab train configs/dcgan-mnist.yaml model.preset=seed train.epochs=$EM train.num_threads=1 train.progress=false --run-dir runs/bench-dcgan-mnist-seed --overwrite
  python -m genlab eval runs/bench-dcgan-mnist-seed $EVAL
  python -m genlab train configs/dcgan-emoji.yaml train.epochs=$EE train.num_threads=1 train.progress=false --run-dir runs/bench-dcgan-emoji --overwrite
  python -m genlab eval runs/bench-dcgan-emoji eval.inception=true eval.num_samples=2000
) > runs/bench-dcgan-seed-then-emoji.log 2>&1 &
wait
