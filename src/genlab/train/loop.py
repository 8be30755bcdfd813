"""The one training loop, shared by every family.

Epochs of shuffled batches with a progress bar; per-epoch train and test losses to
``metrics.jsonl`` and TensorBoard; the model's preview grids per epoch; atomic checkpoints at the end of each
epoch (and every ``train.checkpoint_every_steps`` steps); exact resume from any checkpoint, even
one written in the middle of an epoch; SIGINT/SIGTERM finish the step, checkpoint and exit;
non-finite losses stop the run (or skip the step) with a message naming the step.

The loop knows no family: it builds the data source of the family's ``data_kind`` (looked up in
:mod:`genlab.registry`), hands the model opaque batches (dicts of tensors) and writes whatever
grids the model's ``preview`` returns.

Exactness: all randomness of a step comes from the global torch RNG (dropout) and the model's
:class:`~genlab.core.noise.SharedNoise` (which also draws the data source's pairings); both are
checkpointed, with each process's ``extra_state`` (an image pool). Test losses and previews run
with their own fixed generators inside ``torch.random.fork_rng``, so they never shift training.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from genlab import __version__, registry
from genlab.config import Config, config_from_dict
from genlab.core.allocator import keep_freed_memory_if
from genlab.core.atomic import atomic_write_text, file_digest
from genlab.core.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint, prune_checkpoints, save_checkpoint
from genlab.core.hardware import check_compile_toolchain, resolve_precision
from genlab.core.noise import SharedNoise
from genlab.core.runlog import RunLogger
from genlab.data.datasets import load_source
from genlab.data.sources import DataSource, describe_source, epoch_batches, in_memory_format, iterate_eval_batches
from genlab.errors import CheckpointError, GenlabError, TrainingDiverged
from genlab.models.base import GenerativeModel, NonFiniteLoss, load_optimizer_state
from genlab.nn.layers import reuse_winograd_weights
from genlab.runs import copy_weights, latest_checkpoint, load_state_into
from genlab.train.distributed import DistContext
from genlab.viz.grids import save_image_grid

log = logging.getLogger("genlab")

#: seeds of the generators used for test losses and preview grids (offset from config.seed)
EVAL_SEED_OFFSET, SAMPLE_SEED_OFFSET = 1_000_003, 2_000_003


class Interrupted(GenlabError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint; ``exit_status`` is the shell's
    convention for a process ended by that signal, 128 + its number (SIGINT 130, SIGTERM 143; a rank
    stopped because another rank got the signal uses SIGTERM's)."""

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message)
        self.exit_status = 128 + (signum or signal.SIGTERM)


@dataclass
class LoopState:
    """Where training stands; checkpointed so a resumed run continues exactly."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the current epoch
    step: int = 0  # optimisation steps completed overall
    sums: dict[str, float] = field(default_factory=dict)  # this epoch's loss sums (image-weighted)
    count: float = 0.0  # images in those sums
    skipped_steps: int = 0
    world_size: int = 1


class _StopRequest:
    """SIGINT/SIGTERM set a flag that the loop checks between steps (second SIGINT: default action)."""

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.signal_name, self.signum = True, signal.Signals(signum).name, signum
        log.warning("%s received: finishing this step, then writing a checkpoint", self.signal_name)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


#: what a run directory holds that genlab wrote (``--overwrite`` replaces these and nothing else)
RUN_FILES = ("checkpoints", "tensorboard", "samples", "figures", "metrics.jsonl", "eval.json", "train.log",
             "config.yaml", "sources.json")
#: where ``--overwrite`` keeps the replaced run until the new one has set up (restored if setup fails)
OVERWRITTEN = ".overwritten"


def prepare_run_dir(run_dir: Path, config: Config, *, resume: bool, overwrite: bool) -> str:
    """Create ``run_dir``; refuse to train over an existing run unless resuming or overwriting.

    ``config.yaml`` is written by :func:`train` once the checkpoint (if any) has accepted the config,
    so a refused resume leaves the run as it was. ``overwrite`` moves the old run's files
    (:data:`RUN_FILES`) into ``run_dir/.overwritten``; :func:`train` deletes them once the new run
    has set up, or moves them back if its setup fails (a bad config key or data folder then costs
    nothing). Returns what ``run_dir`` was before: ``"absent"``, ``"empty"``, ``"used"`` (it held
    files) or ``"overwritten"``, which :func:`train` needs to undo a failed setup."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    before = "absent" if not run_dir.exists() else "used" if any(run_dir.iterdir()) else "empty"
    if before == "used" and not resume:
        if not overwrite:
            if saved.is_file() or (run_dir / "checkpoints").is_dir():
                raise GenlabError(f"run directory {run_dir} already holds a run; pass --resume to continue it, "
                                  "--overwrite to start again, or --run-dir for a new one")
            if (run_dir / OVERWRITTEN).is_dir():
                raise GenlabError(f"run directory {run_dir} holds the run an interrupted --overwrite replaced, in "
                                  f"{run_dir / OVERWRITTEN}; move its files back to continue it, or pass --overwrite")
            raise GenlabError(f"run directory {run_dir} holds files but no genlab run; give --run-dir a new or empty "
                              "folder (--overwrite would add a run beside those files)")
        _refuse_overwriting_an_input(run_dir, config)
        aside = run_dir / OVERWRITTEN
        shutil.rmtree(aside, ignore_errors=True)  # left by an --overwrite killed during its setup
        aside.mkdir()
        for name in RUN_FILES:
            if (run_dir / name).exists():
                (run_dir / name).rename(aside / name)
        before = "overwritten"
    if resume and saved.is_file():
        _check_same_experiment(_saved_config_with_defaults(saved), config.to_dict(), saved)
    run_dir.mkdir(parents=True, exist_ok=True)
    return before


def _refuse_overwriting_an_input(run_dir: Path, config: Config) -> None:
    """Raise :class:`GenlabError` if a path in ``config`` that exists (e.g. ``model.stage1_run``,
    ``train.init_from``, ``data.root``) is ``run_dir`` or inside it: ``--overwrite`` would delete what this
    run reads."""
    target = run_dir.resolve()

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        elif isinstance(node, str) and node and Path(node).exists() and Path(node).resolve().is_relative_to(target):
            raise GenlabError(f"--overwrite: {prefix}={node} is in the run directory {run_dir}, which --overwrite "
                              "would delete before this run reads it; give the new run its own --run-dir")

    walk(config.to_dict(), "")


def _saved_config_with_defaults(path: Path) -> dict:
    """The saved config as a dict, with keys added to genlab since the run started at their defaults."""
    try:
        return config_from_dict(yaml.safe_load(path.read_text())).to_dict()
    except GenlabError as exc:
        raise GenlabError(f"cannot resume: the saved config {path} is not valid for this genlab version: {exc}") from exc


def _check_same_experiment(old: dict, new: dict, path: Path) -> None:
    """A resumed run may only change bookkeeping keys (epochs, progress, checkpoint cadence, threads,
    compilation) and the recoveries a divergence error suggests (precision, on_nonfinite); train.epochs
    only under a constant learning rate."""
    # train.batch_size is per process: it may change with the number of processes, and
    # Trainer.restore checks that the global batch stays the same.
    free = {"train.epochs", "train.batch_size", "train.progress", "train.checkpoint_every_steps", "train.keep_checkpoints",
            "train.num_threads", "train.sample_every_epochs", "train.compile", "train.precision",
            "train.on_nonfinite", "eval"}
    diffs = []

    def walk(a, b, prefix):
        if prefix in free or prefix.split(".")[0] in free:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        elif a != b:
            diffs.append(f"{prefix}: {a!r} -> {b!r}")

    walk(old, new, "")
    old_epochs, new_epochs = old.get("train", {}).get("epochs"), new.get("train", {}).get("epochs")
    if new.get("train", {}).get("lr_schedule", "constant") != "constant" and old_epochs != new_epochs:
        # the schedule spans the old number of epochs: a new total would make the lr jump at the resume step
        diffs.append(f"train.epochs: {old_epochs!r} -> {new_epochs!r} with train.lr_schedule="
                     f"{new['train']['lr_schedule']} (its decay spans the run's epochs; to train longer, "
                     f"start a new run with train.init_from={path.parent})")
    if diffs:
        diffs.sort(key=lambda d: not d.startswith(("model.family:", "name:")))  # another model says the most
        more = f"; and {len(diffs) - 5} more" if len(diffs) > 5 else ""
        raise GenlabError(f"--resume with a different experiment than {path}: " + "; ".join(diffs[:5]) + more
                          + " (only train.epochs and bookkeeping keys may change)")


def _check_class_labels(source: DataSource, config: Config) -> None:
    """A family conditioned on classes (``classes`` ability, e.g. the CVAE) needs labels below
    ``model.num_classes``; raise :class:`GenlabError` naming the fix otherwise."""
    data = getattr(source, "data", None)
    labels = getattr(data, "labels", None)
    if labels is None:
        raise GenlabError(f"model.family={config.model.family} is conditioned on class labels, and data.name="
                          f"{config.data.name} has none (image folders are unlabelled; labelled data: mnist, "
                          "fashion-mnist, idx with label files); use an unconditional family such as vae or gan")
    classes, top = getattr(config.model, "num_classes", None), int(labels.max())
    if classes is not None and (top >= classes or int(labels.min()) < 0):
        raise GenlabError(f"model.num_classes={classes}: the labels of data.name={config.data.name} "
                          f"run from {int(labels.min())} to {top}; set model.num_classes={top + 1} (labels must be "
                          "0 .. num_classes - 1)")


class Trainer:
    """Runs one experiment in ``run_dir``. Use :func:`train`."""

    def __init__(self, config: Config, run_dir: Path, ctx: DistContext):
        self.config, self.run_dir, self.ctx = config, Path(run_dir), ctx
        self.family = registry.get(config.model.family)
        self.train_data: DataSource = load_source(config.data, "train", self.family.data_kind)
        if self.train_data is None or len(self.train_data) == 0:
            raise GenlabError(f"data.name={config.data.name} has no training images (root {config.data.root})")
        if self.family.can("classes"):
            _check_class_labels(self.train_data, config)
        self.test_data: DataSource | None = load_source(config.data, "test", self.family.data_kind)
        torch.manual_seed(config.seed)  # the same initial networks on every rank
        self.model: GenerativeModel = self.family.model_class(config).to(ctx.device)
        self.sources: list[dict[str, Any]] = []  # runs whose weights started this one (provenance)
        torch.manual_seed(config.seed + ctx.rank)  # per-rank stream (dropout)
        self.memory_format = torch.channels_last if config.train.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.noise = SharedNoise(config.seed, ctx.rank, ctx.world_size)
        self.model.noise = self.noise
        self.state = LoopState(world_size=ctx.world_size)
        self.model.set_lr_schedule(config.train.lr_schedule, config.train.epochs * self.steps_per_epoch())

    def steps_per_epoch(self) -> int:
        """Optimisation steps in one epoch on this process (the same on every rank)."""
        cfg, ctx = self.config, self.ctx
        return len(epoch_batches(len(self.train_data), cfg.train.batch_size, seed=cfg.seed, epoch=0, rank=ctx.rank,
                                 world_size=ctx.world_size, drop_last=self.model.drop_last))

    def initialise_from(self, run_dir: str | Path) -> None:
        """Start from the weights of ``run_dir``'s newest checkpoint (fine-tuning); optimizers start fresh.

        The weights are copied into this run's own checkpoints, and the source (path, checkpoint
        and its SHA-256) is recorded in every checkpoint and in ``sources.json``, so this run never
        needs the other folder again.

        Raises:
            CheckpointError: the run holds another family or an architecture of other shapes.
        """
        path = latest_checkpoint(Path(run_dir))
        load_state_into(self.model, load_checkpoint(path), path, self.config.model.family)
        self._record_source("train.init_from", run_dir, path)

    def copy_weight_sources(self) -> None:
        """Copy the weights the model asks for (:meth:`GenerativeModel.weight_sources`), e.g. a frozen
        Stage-I generator; a run of another family or of other shapes is a :class:`CheckpointError`."""
        for source in self.model.weight_sources():
            path = latest_checkpoint(Path(source.run_dir))
            state = load_checkpoint(path)
            if state.get("family") != source.family:
                raise CheckpointError(f"{source.role}: {path} holds a '{state.get('family')}' model; "
                                      f"expected a '{source.family}' run")
            copy_weights(self.model, state, path, source.source_prefix, source.target_prefix)
            self._record_source(source.role, source.run_dir, path)

    def _record_source(self, role: str, run_dir: str | Path, path: Path) -> None:
        self.sources.append({"role": role, "run": str(Path(run_dir).resolve()), "checkpoint": path.name,
                             "sha256": file_digest(path)})
        if self.ctx.is_main:
            atomic_write_text(self.run_dir / "sources.json", json.dumps(self.sources, indent=2) + "\n")
        log.info("initialised weights from %s (%s)", path, role)

    # --- checkpoints ------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (collective: call on every rank)."""
        sums = dict(zip(self.state.sums, self.ctx.all_reduce_sum(list(self.state.sums.values()))))
        count = self.ctx.all_reduce_sum([self.state.count])[0]
        torch_states = self.ctx.gather_objects(torch.get_rng_state())
        loop = asdict(self.state) | {"sums": sums, "count": count, "world_size": self.ctx.world_size}
        return {
            "family": self.config.model.family,
            "genlab_version": __version__,
            "config": self.config.to_dict(),
            "loop": loop,
            "model": self.model.state_dict(),
            "optimizers": {n: o.state_dict() for n, o in self.model.optimizers().items()},
            "schedulers": {n: s.state_dict() for n, s in self.model.schedulers().items()},
            "rng": {"noise": self.noise.get_state(), "torch": torch_states},
            "extra": self.ctx.gather_objects(self.model.extra_state()),  # one entry per rank
            "sources": self.sources,
        }

    def save(self) -> None:
        state = self.checkpoint_state()
        if self.ctx.is_main:
            path = save_checkpoint(checkpoint_path(self.run_dir, self.state.step), state)
            prune_checkpoints(self.run_dir, self.config.train.keep_checkpoints)
            log.info("checkpoint %s", path)
        self.ctx.barrier()

    def restore(self) -> bool:
        """Load the newest complete checkpoint; False if there is none."""
        for path in reversed(list_checkpoints(self.run_dir)):
            try:
                state = load_checkpoint(path)
            except CheckpointError as exc:
                log.warning("skipping unreadable checkpoint: %s", exc)
                continue
            load_state_into(self.model, state, path, self.config.model.family)
            for name, opt in self.model.optimizers().items():
                load_optimizer_state(opt, state["optimizers"][name])
            for name, sched in self.model.schedulers().items():
                sched.load_state_dict(state["schedulers"][name])
            loop = state["loop"]
            saved_epochs = state["config"]["train"]["epochs"]
            if self.model.schedule_spans_run and saved_epochs != self.config.train.epochs:
                # a schedule spanning the run (cosine, CycleGAN's linear decay) would jump at the resume step
                raise GenlabError(f"{path} was trained with train.epochs={saved_epochs} under a learning-rate "
                                  f"schedule that spans the run; resume it with train.epochs={saved_epochs}, or "
                                  f"start a new run with train.init_from={self.run_dir} to train longer")
            saved_batch = state["config"]["train"]["batch_size"]
            if saved_batch * loop["world_size"] != self.config.train.batch_size * self.ctx.world_size:
                raise GenlabError(
                    f"{path} was trained with a global batch of {saved_batch * loop['world_size']} "
                    f"({loop['world_size']} process(es) × train.batch_size={saved_batch}); this run has "
                    f"{self.ctx.world_size} × {self.config.train.batch_size}. Set train.batch_size="
                    f"{saved_batch * loop['world_size'] // self.ctx.world_size} to resume it")
            same_world = loop["world_size"] == self.ctx.world_size
            self.state = LoopState(**{**loop, "world_size": self.ctx.world_size})
            if not same_world:
                # The saved epoch order was sharded for another world size; start the next epoch.
                if self.state.batch:
                    log.warning("checkpoint was written by %d processes mid-epoch; resuming at the next epoch "
                                "boundary with %d", loop["world_size"], self.ctx.world_size)
                    self.state.epoch, self.state.batch, self.state.sums, self.state.count = self.state.epoch + 1, 0, {}, 0.0
            if self.ctx.rank != 0:
                self.state.sums, self.state.count = {k: 0.0 for k in self.state.sums}, 0.0
            self.noise.set_state(state["rng"]["noise"])
            self.sources = state.get("sources", [])
            extra = state.get("extra") or []  # runs of genlab <= 0.x before extra state: none
            if same_world and extra:
                self.model.load_extra_state(extra[self.ctx.rank])
            elif extra and any(extra):
                log.warning("per-process extra state (e.g. image pools) was saved by %d processes; with %d "
                            "each process starts with its own empty state", loop["world_size"], self.ctx.world_size)
            torch_states = state["rng"]["torch"]
            if same_world:
                torch.set_rng_state(torch_states[self.ctx.rank])
            else:
                torch.manual_seed(self.config.seed + 7919 * self.state.step + self.ctx.rank)
            log.info("resumed from %s (epoch %d, step %d)", path, self.state.epoch, self.state.step)
            return True
        return False

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self) -> None:
        cfg, ctx = self.config, self.ctx
        if self.state.epoch >= cfg.train.epochs and ctx.is_main:
            longer = (f"start a new run with train.init_from={self.run_dir} (its learning-rate schedule spans its "
                      "epochs)" if self.model.schedule_spans_run else "resume with a larger train.epochs")
            log.info("the run has already trained its train.epochs=%d (step %d): nothing to train; to train longer, %s",
                     cfg.train.epochs, self.state.step, longer)
        logger = RunLogger(self.run_dir, ctx.is_main, self.state.step)
        if ctx.distributed:
            self.model.wrap_networks(ctx.ddp_wrapper(cfg.train.sync_batchnorm))
        self._compiling = cfg.train.compile
        if cfg.train.compile:
            self.model.compile_networks()
            log.info("train.compile: the networks' training forward passes compile during the first steps")
        try:
            with _StopRequest() as stop:
                for epoch in range(self.state.epoch, cfg.train.epochs):
                    self._train_epoch(epoch, stop, logger)
            logger.hparams(cfg.to_dict())  # the config beside its final losses, for TensorBoard's HParams view
        finally:
            logger.close()

    def _train_epoch(self, epoch: int, stop: _StopRequest, logger: RunLogger) -> None:
        cfg, ctx, st = self.config, self.ctx, self.state
        batches = epoch_batches(len(self.train_data), cfg.train.batch_size, seed=cfg.seed, epoch=epoch,
                                rank=ctx.rank, world_size=ctx.world_size, drop_last=self.model.drop_last)
        self.model.train()
        started, images = time.perf_counter(), 0
        bar = tqdm(total=len(batches), initial=st.batch, desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                   disable=not (ctx.is_main and cfg.train.progress), dynamic_ncols=True, leave=False)
        for b in range(st.batch, len(batches)):
            batch = self._to_layout(self.train_data.batch(batches[b], self.noise, ctx.device))
            n = len(batches[b])
            step_started = time.perf_counter()
            try:
                with reuse_winograd_weights():  # each Winograd weight transformed once per optimizer step
                    out = self.model.train_step(batch, st.step)
                if self._compiling and ctx.is_main:
                    log.info("first step (compiling, train.compile): %.1f s", time.perf_counter() - step_started)
                self._compiling = False
            except NonFiniteLoss as exc:
                if cfg.train.on_nonfinite == "stop":
                    raise TrainingDiverged(
                        f"training diverged at step {st.step + 1} (epoch {epoch + 1}, batch {b + 1}): {exc}. "
                        f"The last good checkpoint is kept in {self.run_dir / 'checkpoints'}; "
                        + ("continue it with --resume train.precision=fp32 (this run uses bf16) or "
                           if cfg.train.precision == "bf16" else "continue it with --resume ")
                        + "train.on_nonfinite=skip (skips and counts such steps), or start anew with a lower "
                        "train.lr") from None
                st.skipped_steps += 1
                log.warning("step %d: %s; step skipped (train.on_nonfinite=skip)", st.step + 1, exc)
                out = {}
            for key, value in out.items():
                st.sums[key] = st.sums.get(key, 0.0) + value * n
            st.count += n if out else 0
            for scheduler in self.model.schedulers().values():
                scheduler.step()
            st.step, st.batch, images = st.step + 1, b + 1, images + n
            bar.update(1)
            if out:
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(out.items())[:4]}, refresh=False)
            every = cfg.train.checkpoint_every_steps
            if every and st.step % every == 0 and st.batch < len(batches):
                self.save()
            if ctx.any(stop.requested):
                self.save()
                raise Interrupted(f"{stop.signal_name or 'a signal to another process'} at step {st.step} "
                                  f"(epoch {epoch + 1}), checkpoint written; continue with the same command plus --resume",
                                  stop.signum)
        bar.close()
        seconds = time.perf_counter() - started
        totals = ctx.all_reduce_sum([*st.sums.values(), st.count, float(images)])
        count, images_all = totals[-2], totals[-1]
        record: dict[str, Any] = {"epoch": epoch + 1, "step": st.step}
        record |= {f"train/{k}": s / max(count, 1.0) for k, s in zip(st.sums, totals)}
        record |= {f"test/{k}": v for k, v in self.evaluate().items()}
        record |= {"time/epoch_s": seconds, "time/images_per_s": images_all / max(seconds, 1e-9),
                   "memory/peak_rss_mb": peak_rss_mb()}
        if st.skipped_steps:
            record["skipped_steps"] = st.skipped_steps
        logger.record(record)
        if ctx.is_main:
            log.info("epoch %d/%d  %s", epoch + 1, cfg.train.epochs,
                     "  ".join(f"{k}={v:.4g}" for k, v in record.items() if "/" in k and not k.startswith("time")))
            if (epoch + 1) % cfg.train.sample_every_epochs == 0 or epoch + 1 == cfg.train.epochs:
                self.write_previews(epoch + 1)
        st.epoch, st.batch, st.sums, st.count = epoch + 1, 0, {}, 0.0
        self.save()

    def _to_layout(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Images (every 4-D floating tensor of the batch) in the configured memory format."""
        return in_memory_format(batch, self.memory_format)

    def _fork_rng(self):
        devices = [self.ctx.device] if self.ctx.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Image-weighted mean test losses over the whole test split (all ranks share the work)."""
        if self.test_data is None:
            return {}
        cfg, ctx = self.config, self.ctx
        noise = SharedNoise(cfg.seed + EVAL_SEED_OFFSET)  # this process's own stream, the same every epoch
        sums: dict[str, float] = {}
        count = 0
        self.model.eval()
        with self._fork_rng():
            for index in iterate_eval_batches(self.test_data, cfg.eval.batch_size, ctx.rank, ctx.world_size):
                batch = self._to_layout(self.test_data.batch(index, noise, ctx.device))
                for key, value in self.model.eval_step(batch, noise.generator).items():
                    sums[key] = sums.get(key, 0.0) + value * len(index)
                count += len(index)
        self.model.train()
        totals = ctx.all_reduce_sum([*sums.values(), float(count)])
        return {k: s / max(totals[-1], 1.0) for k, s in zip(sums, totals)}

    @torch.no_grad()
    def write_previews(self, epoch: int) -> list[Path]:
        """The model's preview grids of ``epoch`` (fixed noise and inputs): ``samples/epoch_XXXX[_name].png``."""
        self.model.eval()
        with self._fork_rng():
            generator = torch.Generator().manual_seed(self.config.seed + SAMPLE_SEED_OFFSET)
            grids = self.model.preview(self.test_data or self.train_data, generator)
        self.model.train()
        folder, written = self.run_dir / "samples", []
        for name, grid in grids.items():
            suffix = "" if name == "samples" else f"_{name}"
            written.append(save_image_grid(grid.images.float().cpu(), folder / f"epoch_{epoch:04d}{suffix}.png",
                                           nrow=grid.nrow))
        return written


def train(config: Config, run_dir: Path, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train ``config`` in ``run_dir`` (resuming from its newest checkpoint if ``resume``)."""
    if resume and overwrite:
        raise GenlabError("--resume and --overwrite contradict each other: --resume continues the run in the run "
                          "directory, --overwrite deletes it and starts again; pass one of them")
    ctx = DistContext.start(config.train.device)
    try:
        if config.train.num_threads:
            torch.set_num_threads(config.train.num_threads)
        reusing = keep_freed_memory_if(config.train.reuse_freed_memory)
        precision, why = resolve_precision(config.train.precision, ctx.device)
        if config.train.compile:
            check_compile_toolchain(ctx.device)
        if precision != config.train.precision:
            config = replace(config, train=replace(config.train, precision=precision))
        run_dir = Path(run_dir)
        before = prepare_run_dir(run_dir, config, resume=resume, overwrite=overwrite) if ctx.is_main else None
        ctx.barrier()
        _log_to_file(run_dir / "train.log", ctx.is_main)
        try:
            trainer = Trainer(config, run_dir, ctx)
            restored = resume and trainer.restore()
            if resume and not restored and ctx.is_main:
                log.info("no checkpoint in %s yet; starting from step 0", run_dir)
            if not restored:
                if config.train.init_from:
                    trainer.initialise_from(config.train.init_from)
                trainer.copy_weight_sources()
        except BaseException:
            if before in ("absent", "empty", "overwritten"):  # e.g. a bad data folder: leave no run to block
                _undo_new_run_dir(run_dir, remove_dir=before == "absent")  # the next try
            if before == "overwritten":  # and give the replaced run back
                _restore_overwritten(run_dir)
            raise
        if before == "overwritten":
            shutil.rmtree(run_dir / OVERWRITTEN, ignore_errors=True)
        if ctx.is_main:
            atomic_write_text(run_dir / "config.yaml", config.to_yaml())
            counts = ", ".join(f"{k} {v:,}" for k, v in trainer.model.parameter_counts().items())
            log.info("%s: %s parameters; training on %s, world size %d, device %s", config.model.family,
                     counts, describe_source(trainer.train_data), ctx.world_size, ctx.device)
            if trainer.test_data is None:
                log.warning("data.name=%s%s has no test split: no per-epoch test losses, and genlab eval will need one "
                            "(a folder's test/ images; testA/ and testB/ for two domains)", config.data.name,
                            f" (root {config.data.root})" if config.data.root else "")
            log.info("precision %s: %s", precision, why)
            if config.train.reuse_freed_memory and not reusing:
                log.info("train.reuse_freed_memory: this C library is not glibc; freed memory is returned as usual")
        trainer.fit()
        # every rank leaves together: a rank that tore its gloo group down while rank 0 was still
        # writing the last checkpoint was once aborted ("terminate called without an active exception")
        ctx.barrier()
        return Path(run_dir)
    finally:
        ctx.close()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _undo_new_run_dir(run_dir: Path, *, remove_dir: bool) -> None:
    """Remove what this call wrote into ``run_dir`` (or the directory itself, if it created it) after
    its setup failed: without this a corrected command would be refused, the directory already
    holding a run (its ``train.log``). Only genlab's own files (:data:`RUN_FILES`) are removed."""
    _close_log_files()
    if remove_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _restore_overwritten(run_dir: Path) -> None:
    """Move the run that ``--overwrite`` set aside back into ``run_dir`` (its setup failed)."""
    aside = run_dir / OVERWRITTEN
    for path in aside.iterdir():
        path.rename(run_dir / path.name)
    aside.rmdir()


def _close_log_files() -> None:
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
            handler.close()


def _log_to_file(path: Path, enabled: bool) -> None:
    if not enabled:
        return
    _close_log_files()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
