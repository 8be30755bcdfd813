# The two quickstart commands (README.md) and a few helpers. Python: python3 on PATH.
PYTHON ?= python3

.PHONY: demo test setup bench

demo:  ## set up, then train the seed VAE on MNIST and write its figures and metrics (runs/vae-mnist)
	bash scripts/setup.sh
	$(PYTHON) -m genlab train configs/vae-mnist.yaml --overwrite
	$(PYTHON) -m genlab eval runs/vae-mnist

test:  ## set up with test tools, then run the test suite on both cores
	bash scripts/setup.sh --test
	$(PYTHON) -m pytest -n 2 -p no:cacheprovider

setup:
	bash scripts/setup.sh

bench:  ## quality and speed benchmarks (minutes to hours on a CPU); results go to BENCHMARKS.md
	$(PYTHON) benchmarks/run_all.py
