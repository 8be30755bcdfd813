"""Command line: ``genlab train | info | sample | eval | translate | figures | report | demo | bench | evaluator train``.

Every user mistake (bad config key, missing run, corrupt checkpoint or image) is a
:class:`~genlab.errors.GenlabError`; :func:`main` prints its message and exits with status 2. A
training stopped by SIGINT/SIGTERM (after its checkpoint) prints ``stopped: ...`` and exits with
128 + the signal's number, as a shell reports a process that signal ended.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import typer

from genlab.core.paths import check_writable
from genlab.errors import GenlabError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, sample, evaluate and compare generative image models.")
evaluator_app = typer.Typer(no_args_is_help=True, help="The networks the metrics score with: the evaluator "
                            "classifier (train) and the image-text matcher (text-match).")
app.add_typer(evaluator_app, name="evaluator")

OVERRIDES_HELP = ("Dotted config overrides key=value, e.g. train.epochs=1 data.limit=512 model.latent_dim=16 seed=3 "
                  "(every key: README.md, 'Config keys').")


def _setup_logging() -> None:
    log = logging.getLogger("genlab")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


@app.command()
def train(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config, e.g. configs/vae-mnist.yaml."),
    overrides: list[str] | None = typer.Argument(None, metavar="KEY=VALUE", help=OVERRIDES_HELP, show_default=False),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Where the run is written (default: runs/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's newest checkpoint (starts "
                                "fresh if it has none). Give the same config and overrides as the run (or "
                                "RUN_DIR/config.yaml, which holds them); only train.epochs and bookkeeping keys may change."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in the run directory (its files are kept in "
                                   "RUN_DIR/.overwritten until the new run has set up, and put back if that fails)."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the family's analysis figures into RUN_DIR/figures after training."),
) -> None:
    """Train a model; checkpoints, metrics, samples and figures go to the run directory."""
    from genlab.config import load_config
    from genlab.train.loop import train as run_training

    cfg = load_config(config, overrides or [])
    out = check_writable(run_dir or Path("runs") / cfg.name, "--run-dir", folder=True)
    run_training(cfg, out, resume=resume, overwrite=overwrite)
    if figures and int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes figures
        from genlab.analysis.run_figures import write_figures

        for path in write_figures(out):
            typer.echo(f"figure: {path}")
    typer.echo(f"done: {out}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _leave_without_finalizing()


def _leave_without_finalizing() -> None:
    """End a finished torchrun worker at once, skipping the interpreter's finalization.

    Everything is written by then (checkpoints atomically, the process group destroyed, logs flushed
    here). What finalization would still free was seen to abort a finished rank now and then
    ("terminate called without an active exception", SIGABRT, exit code -6, after its last
    checkpoint; 3 of 5 full test-suite runs on one 2-core machine, 2026-12-05, not reproduced alone),
    which made torchrun report the whole finished run as failed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
def info(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config."),
    overrides: list[str] | None = typer.Argument(None, metavar="KEY=VALUE", help=OVERRIDES_HELP, show_default=False),
) -> None:
    """Print each network of the model with its parameter count."""
    from genlab.config import load_config
    from genlab.registry import build_model

    cfg = load_config(config, overrides or [])
    model = build_model(cfg)
    typer.echo(f"{cfg.model.family} (preset {cfg.model.preset}), image {cfg.data.channels}x{cfg.data.image_size}x{cfg.data.image_size}")
    counts = model.parameter_counts()
    for name, count in counts.items():
        typer.echo(f"  {name:<16}{count:>12,}")
    typer.echo(f"  {'total':<16}{sum(counts.values()):>12,}")


@app.command()
def sample(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory written by `genlab train`."),
    n: int = typer.Option(64, "--n", min=1, max=10000, help="Number of images."),
    label: int | None = typer.Option(None, "--label", help="Class to generate (conditional models); default: cycle through classes."),
    text: str | None = typer.Option(None, "--text", help="Caption to generate from (text-to-image models, e.g. StackGAN; "
                                    "a Stage-II run shows each Stage-I image beside its refinement)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latent noise: the same seed gives the same file, byte for byte."),
    nrow: int | None = typer.Option(None, "--nrow", min=1, help="Images per grid row (default: ~sqrt(n))."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG file to write."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Sample from this checkpoint file of the run "
                                           "(e.g. an earlier step copied aside) instead of its newest."),
) -> None:
    """Generate a grid of N samples from a trained run (for a caption with --text)."""
    import math

    import torch

    from genlab import registry
    from genlab.runs import load_run
    from genlab.viz.grids import save_image_grid

    if output.suffix.lower() != ".png" or output.is_dir():
        raise GenlabError(f"-o/--output: got {output}; genlab sample writes one PNG grid, so give a file name ending in .png")
    check_writable(output, "-o/--output")
    config, model, _ = load_run(run_dir, checkpoint=checkpoint)
    family = registry.get(config.model.family)
    if text is None and not family.can("sample"):
        hint = "pass --text CAPTION" if family.can("text") else \
            "use `genlab translate`" if family.can("translate") else "it has no sampler"
        raise GenlabError(f"the {family.name} model of {run_dir} does not sample unconditionally: {hint}")
    if text is not None:
        if not family.can("text"):
            text_families = ", ".join(f for f in registry.names() if registry.get(f).can("text"))
            raise GenlabError(f"--text: the {config.model.family} model of {run_dir} does not generate from text; "
                              f"omit --text (families that do: {text_families})")
        if label is not None:
            raise GenlabError("--text and --label: a text-to-image model takes a caption, not a class; omit --label")
        if not text.strip():
            raise GenlabError("--text: got an empty caption; give the words to draw, e.g. --text 'a red circle'")
        from genlab.data.text_encoder import HashingTextEncoder

        if config.data.text_encoder == "hashing" and not HashingTextEncoder.features(text):
            raise GenlabError(f"--text: {text!r} has no word the run's hashing text encoder reads (it keeps letters and "
                              "digits; emoji and punctuation are dropped), so it would draw the empty caption; use words")
        grid = model.text_grid(n, [text], generator=torch.Generator().manual_seed(seed))
        save_image_grid(grid.images.float(), output, nrow=nrow or grid.nrow)
        typer.echo(f"wrote {output}")
        return
    cond = None
    if label is not None:
        if not model.num_classes:
            raise GenlabError(f"--label: the {model.family} model of {run_dir} is unconditional; omit --label")
        if not 0 <= label < model.num_classes:
            raise GenlabError(f"--label: got {label}; allowed: 0..{model.num_classes - 1}")
        cond = torch.full((n,), label, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    images = model.sample(n, cond=cond, generator=generator).float()
    save_image_grid(images, output, nrow=nrow or math.ceil(math.sqrt(n)))
    typer.echo(f"wrote {output}")


@app.command("eval")
def evaluate(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory written by `genlab train`, or with --against a folder of images."),
    overrides: list[str] | None = typer.Argument(None, metavar="KEY=VALUE", help="Eval overrides, e.g. eval.iw_samples=5000 eval.nll_images=null "
                                                 "eval.inception=true eval.num_samples=5000.", show_default=False),
    against: Path | None = typer.Option(None, "--against", help="Score RUN_DIR as a folder of images (e.g. another model's "
                                        "samples) against this config's data: FID/KID/precision/recall (and IS for "
                                        "MNIST-like data) versus eval.reference_split."),
    output: Path | None = typer.Option(None, "-o", "--output", help="With --against: also write the results to this JSON file."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Evaluate this checkpoint file of the run (e.g. an "
                                           "earlier step copied aside) instead of its newest; the results go to "
                                           "RUN_DIR/eval_<file name>.json, so eval.json stays the newest's."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads for the evaluation "
                                       "(default: torch's, every core)."),
) -> None:
    """Compute the family's metrics; print them and write RUN_DIR/eval.json (with --against: score a folder of images)."""
    import json

    _setup_logging()
    if threads:
        import torch

        torch.set_num_threads(threads)
    from genlab.eval.run_metrics import eval_output_path, evaluate_run, evaluate_samples_folder

    if checkpoint is not None and against is not None:
        raise GenlabError("--checkpoint goes with a run directory, not with --against (which scores a folder of images)")
    if output is not None and against is None:
        raise GenlabError("-o/--output goes with --against; a run's metrics are written to RUN_DIR/eval.json")
    if output is not None:
        check_writable(output, "-o/--output")
    if against is None and not (run_dir / "config.yaml").is_file() and run_dir.is_dir():
        raise GenlabError(f"{run_dir} is not a run directory (no config.yaml); to score a folder of images, "
                          "pass --against CONFIG (e.g. --against configs/dcgan-mnist.yaml)")
    results = evaluate_run(run_dir, overrides or [], checkpoint) if against is None else \
        evaluate_samples_folder(run_dir, against, overrides or [])
    for key, value in results["metrics"].items():
        if isinstance(value, dict):
            value = json.dumps(value, indent=2).replace("\n", "\n" + " " * 40)
        typer.echo(f"{key:<40}{value:.4f}" if isinstance(value, float) else f"{key:<40}{value}")
    if against is None:
        typer.echo(f"wrote {eval_output_path(run_dir, checkpoint)}")
    elif output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")
        typer.echo(f"wrote {output}")


@app.command()
def translate(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory of a translation model (e.g. CycleGAN)."),
    inputs: list[Path] = typer.Argument(..., metavar="INPUT", help="Image files and/or folders (searched recursively); any size and aspect ratio.",
                                        show_default=False),
    direction: str = typer.Option(..., "--direction", help="AtoB (G_A: domain A, i.e. data.name or trainA/, to B) or BtoA (G_B)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the translations; each keeps its input's file "
                                "name (and path below a folder input)."),
    native: bool = typer.Option(False, "--native", help="Translate at the input's own resolution (padded to the "
                                "generator's stride, cropped back) instead of resizing to the training size and back "
                                "(which stretches a non-square input to the square and back)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files (default: refuse, before any work)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Translate with this checkpoint file of the run "
                                           "(e.g. an earlier step copied aside) instead of its newest."),
) -> None:
    """Translate images with a trained two-domain model; outputs keep the inputs' names and sizes."""
    from genlab.translate import translate_files

    report = translate_files(run_dir, direction, inputs, output, native=native, overwrite=overwrite,
                             checkpoint=checkpoint)
    for path, reason in report.skipped:
        typer.echo(f"skipped {path}: {reason}", err=True)
    typer.echo(f"wrote {len(report.written)} image(s) to {output}")
    if report.skipped:
        others = "the others were translated" if report.written else "nothing was written"
        raise GenlabError(f"{len(report.skipped)} of {len(report.skipped) + len(report.written)} input(s) could not be "
                          f"read (named above); {others}")


@app.command()
def figures(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory written by `genlab train`.")) -> None:
    """(Re)write the family's analysis figures into RUN_DIR/figures."""
    from genlab.analysis.run_figures import write_figures

    for path in write_figures(run_dir):
        typer.echo(f"figure: {path}")


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR", help="One or more run directories written by `genlab train`; with "
                                          "several, the report starts with a comparison of their metrics and curves."),
    output: Path | None = typer.Option(None, "-o", "--output", help="HTML file to write (default: RUN_DIR/report.html "
                                       "for one run; required for several)."),
    title: str | None = typer.Option(None, "--title", help="Title of the report (default: the run's name, or the "
                                     "number of runs)."),
) -> None:
    """Write one self-contained HTML report (config, networks, metrics, curves, previews, figures) of one or more runs."""
    from genlab.report import write_report

    if output is None:
        if len(run_dirs) > 1:
            raise GenlabError("-o/--output: give the HTML file to write when reporting several runs")
        output = run_dirs[0] / "report.html"
    if output.is_dir():
        raise GenlabError(f"-o/--output: {output} is a folder; give the HTML file to write, e.g. {output / 'report.html'}")
    if output.suffix.lower() not in (".html", ".htm"):
        raise GenlabError(f"-o/--output: got {output}; the report is one HTML file, so give a name ending in .html")
    check_writable(output, "-o/--output")
    typer.echo(f"wrote {write_report(run_dirs, output, title)}")


@app.command()
def demo(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR", help="One or more run directories written by `genlab train`; one tab each."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. The default serves this machine only; "
                             "another address (e.g. 0.0.0.0) lets other machines use the demo, which has no login."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="TCP port to listen on."),
    max_upload_mb: float = typer.Option(10.0, "--max-upload-mb", min=0.001, help="Largest uploaded image in MB "
                                        "(1 MB = 1,048,576 bytes); larger files are refused before decoding."),
) -> None:
    """Serve a web demo of trained runs, one tab each: samples, latent explorer and seed interpolation (VAE, CVAE, GAN),
    upload-and-reconstruct (VAE, CVAE), translation (CycleGAN), caption to images (StackGAN). Needs the demo extra (Gradio)."""
    from genlab.demo.app import check_run_dirs, launch

    check_run_dirs(run_dirs)  # a missing run fails here, before Gradio is imported
    launch(run_dirs, host=host, port=port, max_upload_mb=max_upload_mb)


@evaluator_app.command("train")
def evaluator_train(
    data: str = typer.Option("mnist", "--data", help="Dataset: mnist or fashion-mnist."),
    epochs: int = typer.Option(4, "--epochs", min=1, help="Training epochs."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, shuffling and augmentation."),
    output: Path = typer.Option(..., "-o", "--output", help="Weights file to write (.safetensors)."),
) -> None:
    """Train the evaluator classifier and save it with the command that made it."""
    from genlab.eval.classifier import train_and_save

    check_writable(output, "-o/--output")
    command = "genlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = train_and_save(data, epochs, seed, output, command)
    typer.echo(f"test accuracy {float(meta['test_accuracy']):.4f}; wrote {output}")


@evaluator_app.command("text-match")
def evaluator_text_match(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config of a text-to-image run, e.g. configs/stackgan-emoji.yaml."),
    overrides: list[str] | None = typer.Argument(None, metavar="KEY=VALUE", help=OVERRIDES_HELP, show_default=False),
) -> None:
    """Train (or find) the image-text matcher that R-precision uses, on the config's training images; cached."""
    from genlab.config import load_config
    from genlab.eval.text_match import matcher_for

    _, meta = matcher_for(load_config(config, overrides or []))
    typer.echo(f"matcher {meta['path']} (trained now: {meta['trained_now']}; last-epoch in-batch top-1 "
               f"{float(meta.get('final_batch_top1', 'nan')):.3f})")


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="The default configs at batches of at most 32, 6 steps each "
                               "in 3 alternating blocks, short peaks (under 2 minutes on a 2-core CPU); without it "
                               "every case at its config's batch, 20 steps each."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads (default: torch's, all cores)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Timed steps per loop and case (default: 6 quick, 20 full)."),
    only: list[str] | None = typer.Option(None, "--only", help="Only cases whose label contains this text "
                                          "(any letter case; repeatable), e.g. --only cyclegan."),
    features: bool = typer.Option(True, "--features/--no-features", help="Also time FID feature extraction."),
    compile: bool = typer.Option(False, "--compile", help="Time genlab's steps with train.compile=true "
                                 "(torch.compile) and report each case's compile time."),
    configs: Path | None = typer.Option(None, "--configs", help="Folder of the configs (default: the checkout's configs/)."),
    output: Path = typer.Option(Path("runs/bench.json"), "-o", "--output",
                                help="JSON file to write; the Markdown table goes beside it (.md)."),
) -> None:
    """Speed on this machine: genlab's train steps beside plain fp32 eager loops, FLOPs, peaks, memory, sampling."""
    from genlab.bench.run import markdown, run_bench, write_results

    if output.suffix.lower() == ".md":
        raise GenlabError(f"-o/--output: got {output}; the JSON goes there and the Markdown table beside it "
                          f"with .md, so give a .json name, e.g. {output.with_suffix('.json')}")
    check_writable(output, "-o/--output")
    check_writable(output.with_suffix(".md"), "-o/--output (its .md twin)")
    if compile:
        import torch

        from genlab.core.hardware import check_compile_toolchain

        check_compile_toolchain(torch.device("cpu"), "genlab bench --compile")
    result = run_bench(quick=quick, threads=threads, configs=configs, steps=steps, features=features,
                       only=only, compile=compile, progress=lambda line: typer.echo(line, err=True))
    write_results(result, output)
    typer.echo(markdown(result))
    typer.echo(f"wrote {output} and {output.with_suffix('.md')} ({result['seconds']:.0f} s)")


def main() -> None:
    """Entry point of the ``genlab`` console script."""
    _setup_logging()
    try:
        app()
    except GenlabError as exc:
        stopped = getattr(exc, "exit_status", None)  # a training stopped on request (train.loop.Interrupted)
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike; rank 0 says why
            typer.echo(f"{'stopped' if stopped else 'error'}: {exc}", err=True)
        sys.exit(stopped or 2)


if __name__ == "__main__":
    main()
