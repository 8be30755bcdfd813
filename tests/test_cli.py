"""The command line as users call it (in-process with typer's runner, plus one real subprocess)."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from conftest import CONFIGS, TINY

runner = CliRunner()


def genlab(*args):
    """Run ``genlab ARGS`` through main() (so GenlabError → exit 2) and return (exit code, output)."""
    import genlab.cli as cli

    result = runner.invoke(cli.app, list(args), standalone_mode=True, catch_exceptions=True)
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        from genlab.errors import GenlabError

        if isinstance(exc, GenlabError):
            return 2, str(exc)
        raise exc
    return result.exit_code, result.output


def test_info_prints_each_network_with_its_count():
    code, out = genlab("info", str(CONFIGS / "vae-mnist.yaml"))
    assert code == 0 and "495,252" in out and "648,001" in out and "1,143,253" in out


def test_train_sample_eval_round_trip(tmp_path):
    run = tmp_path / "run"
    code, out = genlab("train", str(CONFIGS / "cvae-mnist.yaml"), *TINY, "train.epochs=1", "--run-dir", str(run))
    assert code == 0, out
    assert {"loss_curves.png", "latent_scatter.png", "reconstructions.png", "class_grid.png",
            "interpolations.png"} <= {p.name for p in (run / "figures").iterdir()}
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for path, seed in ((a, 1), (b, 1), (c, 2)):
        code, out = genlab("sample", str(run), "--n", "16", "--seed", str(seed), "--label", "3", "-o", str(path))
        assert code == 0, out
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    code, out = genlab("sample", str(run), "--n", "4", "--label", "12", "-o", str(a))
    assert code == 2 and "0..9" in out
    import torch

    threads = torch.get_num_threads()
    code, out = genlab("eval", str(run), "eval.iw_samples=4", "eval.nll_images=8", "eval.num_samples=20", "--threads", "1")
    used = torch.get_num_threads()
    torch.set_num_threads(threads)  # in-process: give the other tests theirs back
    assert code == 0 and used == 1, out
    result = json.loads((run / "eval.json").read_text())["metrics"]
    assert result["test/elbo_images"] == 10000 and result["test/nll_iw_samples"] == 4
    assert 0 < result["test/nll"] < 800 and 0 <= result["conditional_accuracy"] <= 1
    code, out = genlab("eval", str(run), "train.lr=1")
    assert code == 2 and "eval.*" in out


def test_eval_of_a_chosen_checkpoint_keeps_eval_json(tmp_path, monkeypatch):
    run = tmp_path / "run"
    code, out = genlab("train", str(CONFIGS / "vae-mnist.yaml"), *TINY, "train.epochs=2", "train.keep_checkpoints=5",
                       "train.checkpoint_every_steps=4", "--run-dir", str(run), "--no-figures")
    assert code == 0, out
    found = sorted((run / "checkpoints").glob("step_*.safetensors"))
    assert len(found) >= 2
    first, last = found[0], found[-1]
    (run / "eval.json").write_text('{"newest": true}')  # stands for the newest checkpoint's results
    quick = ["eval.iw_samples=2", "eval.nll_images=4", "eval.num_samples=8"]
    results = {}
    for path in (first, last):
        code, out = genlab("eval", str(run), *quick, "--checkpoint", str(path))
        assert code == 0 and f"eval_{path.stem}.json" in out, out
        results[path] = json.loads((run / f"eval_{path.stem}.json").read_text())
        assert results[path]["checkpoint"] == path.name and results[path]["checkpoint_file"] == str(path.resolve())
    assert (run / "eval.json").read_text() == '{"newest": true}'  # untouched
    assert results[first]["step"] < results[last]["step"]
    assert results[first]["metrics"]["test/neg_elbo"] != results[last]["metrics"]["test/neg_elbo"]
    grids = {}  # `genlab sample --checkpoint` draws from the chosen step; without it, from the newest
    for name, extra in (("first", ["--checkpoint", str(first)]), ("last", ["--checkpoint", str(last)]), ("newest", [])):
        grids[name] = tmp_path / f"{name}.png"
        code, out = genlab("sample", str(run), "--n", "4", *extra, "-o", str(grids[name]))
        assert code == 0, out
    assert grids["last"].read_bytes() == grids["newest"].read_bytes() != grids["first"].read_bytes()
    # the default eval names the checkpoint it loaded, even if a training writes a newer one meanwhile
    import genlab.eval.run_metrics as run_metrics

    apply_overrides = run_metrics.apply_eval_overrides  # called after the checkpoint is loaded

    def overrides_while_a_newer_checkpoint_appears(config, overrides):
        (run / "checkpoints" / "step_999999999.safetensors").write_bytes(first.read_bytes())
        return apply_overrides(config, overrides)

    monkeypatch.setattr(run_metrics, "apply_eval_overrides", overrides_while_a_newer_checkpoint_appears)
    code, out = genlab("eval", str(run), *quick)
    assert code == 0, out
    newest = json.loads((run / "eval.json").read_text())
    assert newest["checkpoint"] == last.name and newest["step"] == results[last]["step"]
    assert newest["metrics"]["test/neg_elbo"] == results[last]["metrics"]["test/neg_elbo"]
    monkeypatch.undo()
    (run / "checkpoints" / "step_999999999.safetensors").unlink()
    code, out = genlab("eval", str(run), "--checkpoint", str(tmp_path / "nope.safetensors"))
    assert code == 2 and "nope.safetensors" in out
    other = tmp_path / "other"  # a checkpoint of another run's model is refused, not evaluated into this run
    code, out = genlab("train", str(CONFIGS / "vae-mnist.yaml"), *TINY, "train.epochs=1", "model.latent_dim=3",
                       "--run-dir", str(other), "--no-figures")
    assert code == 0, out
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(sorted((other / "checkpoints").glob("step_*.safetensors"))[-1].read_bytes())
    code, out = genlab("eval", str(run), "--checkpoint", str(foreign))
    assert code == 2 and "model.latent_dim" in out and not (run / f"eval_{foreign.stem}.json").exists()
    code, out = genlab("sample", str(run), "--checkpoint", str(foreign), "-o", str(tmp_path / "foreign.png"))
    assert code == 2 and "model.latent_dim" in out and not (tmp_path / "foreign.png").exists()


def test_user_mistakes_exit_2_with_a_message_and_no_traceback(tmp_path):
    cases = [
        (["train", str(CONFIGS / "vae-mnist.yaml"), "model.bogus=1"], "model.bogus"),
        (["info", str(tmp_path / "missing.yaml")], "not found"),
        (["sample", str(tmp_path / "no-run"), "-o", str(tmp_path / "x.png")], "not found"),
        (["sample", str(tmp_path / "no-run"), "-o", str(tmp_path / "grid.txt")], "ending in .png"),
        (["report", str(tmp_path), "-o", str(tmp_path)], "is a folder; give the HTML file"),
        (["report", str(tmp_path), "-o", str(tmp_path / "r.pdf")], "ending in .html"),
        (["train", str(CONFIGS / "vae-mnist.yaml"), "--resume", "--overwrite", "--run-dir", str(tmp_path / "r")],
         "contradict each other"),
    ]
    for args, words in cases:
        proc = subprocess.run([sys.executable, "-m", "genlab", *args], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Traceback" not in proc.stderr


def test_config_error_is_printed_by_rank_0_only():
    """Under torchrun every rank hits the same config error; one message is enough."""
    import os

    args = [sys.executable, "-m", "genlab", "info", str(CONFIGS / "vae-mnist.yaml"), "model.bogus=1"]
    for rank, printed in (("0", True), ("1", False)):
        proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "RANK": rank})
        assert proc.returncode == 2
        assert ("model.bogus" in proc.stderr) is printed, (rank, proc.stderr)


def test_help_explains_every_option():
    code, out = genlab("train", "--help")
    assert code == 0
    for option in ("--run-dir", "--resume", "--overwrite", "train.epochs=1"):
        assert option in out
    assert "runs/<config name>" in " ".join(out.split())  # the default, not swallowed as rich markup


def test_help_texts_keep_their_defaults():
    """Help text in square brackets is rich markup and vanishes from --help; defaults use parentheses."""
    for command, shown in (("bench", "torch's, all cores"), ("bench", "6 quick, 20 full"), ("sample", "~sqrt(n)")):
        code, out = genlab(command, "--help")
        assert code == 0 and shown in " ".join(out.replace("│", " ").split()), (command, shown)


def test_eval_scores_a_folder_of_images_against_a_config(tmp_path, caplog):
    import numpy as np
    from PIL import Image

    from genlab.data.mnist import load_mnist

    digits, _ = load_mnist("test")
    real, noise = tmp_path / "real", tmp_path / "noise"
    (real / "sub").mkdir(parents=True)
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):  # the last 16 test digits, one in a subfolder (folders are searched recursively)
        Image.fromarray(digits[-1 - i].numpy().reshape(28, 28)).save(real / ("sub" if i == 0 else "") / f"{i:02d}.png")
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(noise / f"{i:02d}.png")
    out = tmp_path / "scores.json"
    config = str(CONFIGS / "dcgan-mnist.yaml")
    code, text = genlab("eval", str(real), "--against", config, "eval.num_samples=12", "-o", str(out))
    assert code == 0, text
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert metrics["protocol"]["num_samples"] == 12 and metrics["protocol"]["reference"] == "mnist/test"
    assert metrics["protocol"]["reference_images"] == 10000 and "inception" in metrics["protocol"]["skipped"]
    assert result["against"] == config and not (real / "eval.json").exists()  # nothing written into the folder
    code, text = genlab("eval", str(noise), "--against", config, "eval.num_samples=12")
    assert code == 0, text
    assert "fewer than eval.num_samples" not in caplog.text
    code, _ = genlab("eval", str(noise), "--against", config, "eval.num_samples=100")  # 16 images: scored, with a warning
    assert code == 0 and "16 images, fewer than eval.num_samples=100" in caplog.text
    noise_fid = float(next(line.split()[-1] for line in text.splitlines() if line.startswith("fid_evaluator")))
    assert metrics["fid_evaluator"] < noise_fid / 3  # digits look like the test set, uniform noise does not

    code, text = genlab("eval", str(real))
    assert code == 2 and "--against" in text and "config.yaml" in text
    code, text = genlab("eval", str(real), "-o", str(out))
    assert code == 2 and "--against" in text
    (noise / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, text = genlab("eval", str(noise), "--against", config)
    assert code == 2 and "broken.png" in text


def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch):
    """A path that cannot be written stops a command at once, not after its benchmark or training."""
    import genlab.bench.run as bench_run

    calls = []
    monkeypatch.setattr(bench_run, "run_bench", lambda **kwargs: calls.append(kwargs))
    taken = tmp_path / "results.json"
    taken.write_text("{}")
    cases = [
        (["bench", "--quick", "-o", str(taken / "x.json")], "is a file, not a folder"),
        (["bench", "--quick", "-o", str(tmp_path)], "is a folder; give a file"),
        (["bench", "--quick", "-o", str(tmp_path / "speed.md")], "give a .json name"),
        (["train", str(CONFIGS / "vae-mnist.yaml"), "--run-dir", str(taken / "run")], "is a file, not a folder"),
        (["train", str(CONFIGS / "vae-mnist.yaml"), "--run-dir", str(taken)], "is a file; give a folder"),
        (["sample", str(tmp_path / "no-run"), "-o", str(taken / "x.png")], "is a file, not a folder"),
        (["translate", str(tmp_path / "no-run"), str(taken), "--direction", "AtoB", "-o", str(taken)],
         "is a file; give a folder"),
        (["report", str(tmp_path / "no-run"), "-o", str(taken / "r.html")], "is a file, not a folder"),
    ]
    for args, words in cases:
        code, out = genlab(*args)
        assert code == 2 and words in out, (args, out)
    assert calls == [] and taken.read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_eval_against_refuses_a_run_directory(tmp_path):
    run = tmp_path / "run"
    code, out = genlab("train", str(CONFIGS / "vae-mnist.yaml"), *TINY, "train.epochs=1", "--run-dir", str(run))
    assert code == 0, out
    code, out = genlab("eval", str(run), "--against", str(CONFIGS / "dcgan-mnist.yaml"))
    assert code == 2 and "is a run directory" in out and f"genlab eval {run}" in out
