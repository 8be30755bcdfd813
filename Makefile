# The two quickstart commands (README.md) and a few helpers. Python: python3 on PATH.
PYTHON ?= python3

.PHONY: train test setup bench

train:  ## set up, then train the seed VAE on MNIST and write its figures and metrics (runs/vae-mnist)
	bash scripts/setup.sh
	$(PYTHON) -m genlab train configs/vae-mnist.yaml --overwrite
	$(PYTHON) -m genlab eval runs/vae-mnist

test:  ## set up with test tools, then run the test suite on both cores
	bash scripts/setup.sh --test
	$(PYTHON) -m pytest -n 2 -p no:cacheprovider

setup:
	bash scripts/setup.sh

bench:  ## issue-2 quality and speed benchmarks (hours on a 2-core CPU); BENCHMARKS.md reports them
	bash benchmarks/vae_quality.sh
	$(PYTHON) benchmarks/train_speed.py --config configs/vae-mnist.yaml --steps 50
	for c in vae-mnist cvae-mnist fcgan-mnist dcgan-mnist; do $(PYTHON) benchmarks/peak_memory.py configs/$$c.yaml; done
	$(PYTHON) benchmarks/ddp_equivalence.py
