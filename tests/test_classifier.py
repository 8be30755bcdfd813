"""Tests of the digit classifier that evaluates generated images (genlab.eval.classifier)."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from genlab.data.mnist import load_mnist
from genlab.errors import CheckpointError
from genlab.eval.classifier import (
    FORMAT,
    DigitClassifier,
    accuracy,
    evaluator_metadata,
    load_evaluator,
    save_evaluator,
    train_classifier,
)


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test")


@pytest.fixture(scope="module")
def mnist_train_small():
    x, y = load_mnist("train")
    return x[:512], y[:512]


def test_shapes_and_dtypes():
    model = DigitClassifier().eval()
    x = torch.rand(3, 1, 28, 28)
    assert model.num_classes == 10
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, 128)
    pred = model.predict(x)
    assert pred.shape == (3,) and pred.dtype == torch.int64
    assert torch.equal(pred, model(x).argmax(1))


def test_training_learns_small_subset(mnist_train_small):
    x, y = mnist_train_small
    xf = x.float() / 255
    torch.manual_seed(0)
    with torch.no_grad():
        before = F.cross_entropy(DigitClassifier().eval()(xf), y).item()
    # 32 small steps: enough for the BatchNorm running statistics to settle, still ~2 s.
    model = train_classifier(x, y, epochs=1, batch_size=16, lr=3e-3, seed=0, progress=False)
    assert not model.training
    with torch.no_grad():
        after = F.cross_entropy(model(xf), y).item()
    assert after < before
    assert accuracy(model, x, y) > 0.3  # chance is 0.1


def test_training_is_deterministic_and_keeps_global_rng(mnist_train_small):
    x, y = mnist_train_small[0][:128], mnist_train_small[1][:128]
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = train_classifier(x, y, epochs=1, batch_size=64, seed=7, progress=False)
    assert torch.equal(torch.rand(1), expected_next)
    b = train_classifier(x, y, epochs=1, batch_size=64, seed=7, progress=False)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), name


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DigitClassifier().eval()
    path = tmp_path / "clf.safetensors"
    save_evaluator(model, path, metadata={"dataset": "mnist", "test_accuracy": "0.5", "command": "genlab x"})
    loaded = load_evaluator(path)
    assert not loaded.training
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    meta = evaluator_metadata(path)
    assert meta["format"] == FORMAT and meta["dataset"] == "mnist" and meta["command"] == "genlab x"


def test_missing_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointError, match="nope.safetensors.*does not exist"):
        load_evaluator(path)


def test_other_safetensors_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "something-else"})
    with pytest.raises(CheckpointError, match="other.safetensors.*not a genlab evaluator"):
        load_evaluator(path)


def test_wrong_shapes_raise_checkpoint_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    state = DigitClassifier().state_dict()
    state["fc.0.weight"] = torch.zeros(64, 3136)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": FORMAT})
    with pytest.raises(CheckpointError, match="bad.safetensors.*fc.0.weight"):
        load_evaluator(path)


def test_garbage_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"this is not a safetensors file")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_evaluator(path)


def test_shipped_weights_classify_mnist(mnist_test):
    meta = evaluator_metadata()
    assert meta["dataset"] == "mnist"
    assert meta["command"].startswith("genlab evaluator train --data mnist")
    assert float(meta["test_accuracy"]) >= 0.992
    model = load_evaluator()
    x, y = mnist_test
    assert accuracy(model, x[:1000], y[:1000]) >= 0.99


def test_bad_training_arguments_raise_config_error(mnist_train_small):
    from genlab.errors import ConfigError

    with pytest.raises(ConfigError, match="epochs=0"):
        train_classifier(*mnist_train_small, epochs=0, progress=False)
