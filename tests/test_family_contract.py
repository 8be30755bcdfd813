"""The family contract, exercised by a family that exists in this file only.

``ToyTranslator`` is a two-domain family (A → B by a 1×1 convolution) with a stateful buffer: a pool
of past translations, replaced at random, that feeds its loss, so a resume that lost the pool
would train differently. It registers itself on import; nothing in genlab names it. The test
trains it through the public ``train`` on an unpaired folder of two domains of different sizes,
checks its previews, resumes it from a mid-epoch checkpoint bit-identically (pool included),
evaluates it and finds it in the registry.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest
import torch
from PIL import Image
from torch import nn

from conftest import losses, weights, write_unpaired_folders
from genlab import registry
from genlab.analysis.run_figures import write_figures
from genlab.config import config_from_dict
from genlab.core.checkpoint import list_checkpoints, load_checkpoint
from genlab.eval.run_metrics import evaluate_run
from genlab.family import Family
from genlab.models.base import GenerativeModel, PreviewGrid
from genlab.runs import load_run
from genlab.schema import ModelConfig, check
from genlab.train.loop import train

POOL_SIZE = 4


@dataclass
class ToyConfig(ModelConfig):
    """The toy family's model section."""

    family: str = "toy-translator"
    preset: str = "none"
    pool_weight: float = 0.5  # weight of the loss on pooled past translations

    def __post_init__(self) -> None:
        check(self.pool_weight >= 0, "model.pool_weight", self.pool_weight, "a number >= 0")


class ToyTranslator(GenerativeModel):
    """A → B by one 1×1 convolution, trained to match the mean colour of its unpaired B partner;
    a pool of past translations (extra state) adds a second term."""

    family = "toy-translator"

    def __init__(self, config):
        super().__init__(config)
        self.a_to_b = nn.Conv2d(3, 3, 1)
        self.optimizer = torch.optim.Adam(self.a_to_b.parameters(), lr=config.train.lr)
        self.pool = torch.zeros(0, 3)  # (k, 3) mean colours of past translations

    def networks(self):
        return {"a_to_b": self.a_to_b}

    def optimizers(self):
        return {"translator": self.optimizer}

    def train_step(self, batch, step):
        fake = self.run("a_to_b")(batch["image"])
        colour, target = fake.mean(dim=(2, 3)), batch["image_b"].mean(dim=(2, 3))
        match = (colour - target).pow(2).mean()
        pooled = (self.pool.mean(0) - target.mean(0)).pow(2).mean() if len(self.pool) else torch.zeros(())
        self.step_optimizer("translator", match + self.config.model.pool_weight * pooled * colour.mean())
        for row in colour.detach():  # the pool: fill, then replace a random entry half of the time
            if len(self.pool) < POOL_SIZE:
                self.pool = torch.cat([self.pool, row[None]])
            elif float(self.noise.rand(1)) < 0.5:
                self.pool[int(self.noise.randint(1, POOL_SIZE))] = row
        return {"match": float(match.detach()), "pooled": float(pooled.detach())}

    @torch.no_grad()
    def preview(self, data, generator):
        fixed = data.paired(torch.arange(min(4, len(data))), self.device)
        pairs = torch.stack([fixed["image"], self.a_to_b(fixed["image"]).clamp(0, 1)], dim=1).flatten(0, 1)
        return {"a_to_b": PreviewGrid(pairs, nrow=2)}

    def extra_state(self):
        return {"pool": self.pool.clone()}

    def load_extra_state(self, state):
        self.pool = state["pool"].clone()


def toy_metrics(model, config):
    """Distance between the translation's and the domain B test set's mean colours."""
    from genlab.data.datasets import load_source

    test = load_source(config.data, "test", "unpaired")
    fixed = test.paired(torch.arange(len(test)), model.device)
    with torch.no_grad():
        gap = (model.a_to_b(fixed["image"]).mean(dim=(0, 2, 3)) - fixed["image_b"].mean(dim=(0, 2, 3))).abs().mean()
    return {"colour_gap": float(gap)}


FAMILY = registry.register(Family(
    name="toy-translator", config_class=ToyConfig, model_class=ToyTranslator, data_kind="unpaired",
    loss_names=("match", "pooled"), metrics=toy_metrics, abilities=frozenset({"translate"}),
    summary="a toy two-domain family defined in a test file",
), replace=True)


@pytest.fixture(scope="module")
def unpaired_root(tmp_path_factory):
    """Reddish domain A (12 train, 4 test) and bluish domain B (7 train, 3 test): different sizes."""
    return write_unpaired_folders(tmp_path_factory.mktemp("unpaired"), sizes=(12, 7, 4, 3), size=8)


def toy_config(root, **train):
    return config_from_dict({
        "name": "toy", "model": {"family": "toy-translator"},
        "data": {"name": "folder", "root": str(root), "image_size": 8, "channels": 3},
        "train": {"epochs": 3, "batch_size": 4, "lr": 0.05, "progress": False, "checkpoint_every_steps": 1,
                  "keep_checkpoints": 100, **train},
    })


def test_the_toy_family_is_listed_by_the_registry():
    assert "toy-translator" in registry.names()
    assert registry.get("toy-translator") is FAMILY
    assert registry.build_model(toy_config("unused")).networks().keys() == {"a_to_b"}


def test_train_preview_resume_and_evaluate_a_family_defined_outside_genlab(tmp_path, unpaired_root):
    full = train(toy_config(unpaired_root), tmp_path / "full")
    records = losses(full)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["train/match"] < records[0]["train/match"]  # it learns to turn red into blue
    for epoch in (1, 2, 3):  # the model's own previews, under its own name
        with Image.open(full / "samples" / f"epoch_{epoch:04d}_a_to_b.png") as grid:
            assert grid.size[0] > 2 * 8
    assert not (full / "samples" / "epoch_0001.png").exists()  # no default sample grid: it cannot sample
    final = load_checkpoint(list_checkpoints(full)[-1])
    assert final["extra"][0]["pool"].shape == (POOL_SIZE, 3)  # the pool is checkpointed, per rank

    # a kill in the middle of epoch 2 (steps 4..6 of 9): keep checkpoints up to step 5, resume
    part = tmp_path / "part"
    shutil.copytree(full, part)
    for ckpt in list_checkpoints(part)[5:]:
        ckpt.unlink()
    train(toy_config(unpaired_root), part, resume=True)
    assert losses(part) == losses(full)
    for key, value in weights(full).items():
        assert torch.equal(weights(part)[key], value), key
    assert torch.equal(load_checkpoint(list_checkpoints(part)[-1])["extra"][0]["pool"], final["extra"][0]["pool"])

    # without its pool the same resume trains differently: the pool matters to the result
    lost = tmp_path / "lost"
    shutil.copytree(full, lost)
    for ckpt in list_checkpoints(lost)[5:]:
        ckpt.unlink()
    original = ToyTranslator.load_extra_state
    try:
        ToyTranslator.load_extra_state = lambda self, state: None
        train(toy_config(unpaired_root), lost, resume=True)
    finally:
        ToyTranslator.load_extra_state = original
    assert any(not torch.equal(weights(lost)[k], v) for k, v in weights(full).items())

    result = evaluate_run(full)
    assert result["family"] == "toy-translator" and 0 <= result["metrics"]["colour_gap"] < 1
    assert (full / "eval.json").is_file()
    assert [p.name for p in write_figures(full)] == ["loss_curves.png"]
    config, model, _ = load_run(full)
    assert isinstance(model, ToyTranslator) and config.model.pool_weight == 0.5


def test_unpaired_partners_do_not_depend_on_the_number_of_processes(unpaired_root):
    """Two processes with batch B draw the same B partners as one process with batch 2B."""
    from genlab.core.noise import SharedNoise
    from genlab.data.datasets import load_source

    source = load_source(toy_config(unpaired_root).data, "train", "unpaired")
    index = torch.arange(8)
    one = source.batch(index, SharedNoise(3), torch.device("cpu"))["image_b"]
    ranks = [source.batch(index[r::2], SharedNoise(3, rank=r, world_size=2), torch.device("cpu"))["image_b"]
             for r in range(2)]
    assert torch.equal(one[0::2], ranks[0]) and torch.equal(one[1::2], ranks[1])
