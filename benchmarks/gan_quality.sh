#!/usr/bin/env bash
# Issue 3 quality targets: DCGAN on MNIST (evaluator-feature and TF-Inception FID/KID, 5,000 samples
# against the 10,000 test images) for the shipped Radford config, the seed preset and the best
# configuration found, and DCGAN on Twemoji at 64x64 (KID/FID against the 3,616 training images),
# then how much of an MNIST Inception-FID faint background speckle explains. Each line is the exact
# command whose numbers BENCHMARKS.md reports; EPOCHS_* override lengths. A run stopped early
# continues with the same command plus --resume in place of --overwrite.
# TF-Inception costs 0.2-0.4 s per image per core here: the MNIST test features (10,000 images) and
# the Twemoji training features are computed once and cached in ~/.cache/genlab/features.
# train.precision=bf16 uses the AMX units of the Xeon these ran on (BENCHMARKS.md, Speed); drop it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
EM=${EPOCHS_MNIST:-5}; ES=${EPOCHS_SEED:-3}; EB=${EPOCHS_BEST:-20}; EE=${EPOCHS_EMOJI:-20}
EVAL="eval.inception=true eval.num_samples=5000"
mkdir -p runs
(
  # the Radford preset as shipped in configs/dcgan-mnist.yaml (f = 64, 32x32)
  python -m genlab train configs/dcgan-mnist.yaml train.epochs=$EM train.num_threads=1 train.progress=false --run-dir runs/bench-dcgan-mnist --overwrite
  python -m genlab eval runs/bench-dcgan-mnist $EVAL
  # the best configuration: spectral norm in D (which drops D's BatchNorm), batches of 64
  python -m genlab train configs/dcgan-mnist.yaml model.spectral_norm=true train.batch_size=64 train.precision=bf16 \
    train.epochs=$EB train.num_threads=1 train.progress=false --run-dir runs/bench-dcgan-mnist-sn --overwrite
  python -m genlab eval runs/bench-dcgan-mnist-sn $EVAL
  python -m genlab train configs/dcgan-emoji.yaml model.diffaug=color,translation,cutout train.batch_size=32 train.precision=bf16 \
    train.epochs=$EE train.num_threads=1 train.progress=false --run-dir runs/bench-dcgan-emoji --overwrite
  python -m genlab sample runs/bench-dcgan-emoji --n 64 --seed 0 -o benchmarks/results/figures/dcgan_twemoji_epoch20.png
  python -m genlab eval runs/bench-dcgan-emoji eval.inception=true eval.num_samples=1000
) > runs/bench-dcgan-mnist.log 2>&1 &
(
  # the seed report's DCGAN layer stack at MNIST's 32x32x1 (dense layers follow the image size)
  python -m genlab train configs/dcgan-mnist.yaml model.preset=seed train.precision=bf16 train.epochs=$ES \
    train.num_threads=1 train.progress=false --run-dir runs/bench-dcgan-mnist-seed --overwrite
  python -m genlab eval runs/bench-dcgan-mnist-seed $EVAL
) > runs/bench-dcgan-seed.log 2>&1 &
wait
python benchmarks/inception_background.py --n 500 --runs runs/bench-dcgan-mnist-sn
