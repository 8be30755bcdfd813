"""How close 2 gloo processes with batch B come to 1 process with batch 2B (VAE and FCGAN).

    python benchmarks/ddp_equivalence.py

Trains each pair for one tiny epoch (the settings of tests/test_distributed.py) and prints the
largest absolute and relative weight difference; writes benchmarks/results/ddp_equivalence.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.limit=64", "data.test_limit=64", "train.progress=false", "train.epochs=2", "--no-figures"]
CASES = {
    "vae": ["configs/vae-mnist.yaml", "model.conv_channels=[4,8,8]", "model.encoder_hidden=[16]",
            "model.decoder_hidden=[16]", "model.dropout=0"],
    "fcgan": ["configs/fcgan-mnist.yaml", "data.image_size=28", "model.hidden=[32,32,32]", "model.dropout=0",
              "model.label_smoothing=[0.7,1.0]", "model.instance_noise=0.1", "model.label_flip_prob=0.05"],
}


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    last = sorted((run_dir / "checkpoints").glob("step_*.safetensors"))[-1]
    with safe_open(str(last), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k.startswith("s.model.") and f.get_tensor(k).is_floating_point()}


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in CASES.items():
            ddp, single = Path(tmp) / f"{name}-ddp", Path(tmp) / f"{name}-single"
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
            subprocess.run([*launcher, "genlab", "train", *args, *TINY, "train.batch_size=8", "--run-dir", str(ddp)],
                           check=True, capture_output=True, cwd=ROOT)
            subprocess.run([sys.executable, "-m", "genlab", "train", *args, *TINY, "train.batch_size=16",
                            "--run-dir", str(single)], check=True, capture_output=True, cwd=ROOT)
            a, b = final_weights(ddp), final_weights(single)
            abs_diff = max(float((a[k] - b[k]).abs().max()) for k in a)
            rel_diff = max(float(((a[k] - b[k]).abs() / (b[k].abs() + 1e-12)).max()) for k in a)
            scale = max(float(b[k].abs().max()) for k in b)
            results[name] = {"max_abs_diff": abs_diff, "max_rel_diff": rel_diff, "max_abs_weight": scale,
                             "tensors": len(a), "steps": 8}
            print(name, results[name], flush=True)
    out = ROOT / "benchmarks" / "results" / "ddp_equivalence.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
