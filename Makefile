# The two quickstart commands (README.md) and a few helpers. Python: python3 on PATH.
PYTHON ?= python3

.PHONY: train test setup bench

# the GAN experiments' budget in BENCHMARKS.md: one epoch over 30,000 MNIST images in batches of 64
# (469 steps), 5,000 samples per run; the ablation and the sweeps use a DCGAN of width f = 32
GAN_BUDGET = --epochs 1 --limit 30000 --batch-size 64 --threads 1 --num-samples 5000

train:  ## set up, then train the seed VAE on MNIST and write its figures and metrics (runs/vae-mnist)
	bash scripts/setup.sh
	$(PYTHON) -m genlab train configs/vae-mnist.yaml --overwrite
	$(PYTHON) -m genlab eval runs/vae-mnist

test:  ## set up with test tools, then run the test suite on both cores (the browser tests share one worker: --dist loadgroup)
	bash scripts/setup.sh --test
	$(PYTHON) -m pytest -n 2 --dist loadgroup -p no:cacheprovider

setup:
	bash scripts/setup.sh

bench:  ## quality and speed benchmarks (many hours on a 2-core CPU); BENCHMARKS.md reports them
	$(PYTHON) -m genlab bench -o benchmarks/results/speed.json
	bash benchmarks/vae_quality.sh
	bash benchmarks/gan_quality.sh
	$(PYTHON) benchmarks/gan_experiments.py ablation $(GAN_BUDGET) --set model.width=32
	$(PYTHON) benchmarks/gan_experiments.py compare $(GAN_BUDGET)
	$(PYTHON) benchmarks/gan_experiments.py noise $(GAN_BUDGET) --set model.width=32
	$(PYTHON) benchmarks/train_speed.py --config configs/vae-mnist.yaml --steps 50
	for c in vae-mnist cvae-mnist fcgan-mnist dcgan-mnist; do $(PYTHON) benchmarks/peak_memory.py configs/$$c.yaml; done
	$(PYTHON) benchmarks/ddp_equivalence.py
