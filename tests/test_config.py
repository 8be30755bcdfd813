import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CONFIGS
from genlab.config import apply_overrides, load_config, read_yaml
from genlab.errors import ConfigError


def test_overrides_reach_typed_fields():
    cfg = load_config(CONFIGS / "vae-mnist.yaml", ["train.epochs=1", "data.limit=512", "model.latent_dim=16", "seed=3"])
    assert (cfg.train.epochs, cfg.data.limit, cfg.model.latent_dim, cfg.seed) == (1, 512, 16, 3)
    assert cfg.name == "vae-mnist"
    assert cfg.model.conv_channels == [32, 64, 128]  # from the seed preset


def test_int_is_accepted_for_float_and_list_for_list():
    cfg = load_config(CONFIGS / "vae-mnist.yaml", ["train.lr=1", "model.encoder_hidden=[8, 4]"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.model.encoder_hidden == [8, 4]


def test_exponent_notation_is_a_number_for_float_keys_only():
    """YAML 1.1 reads 1e-4 (no dot) as a string; float keys take it, other keys still refuse it."""
    cfg = load_config(CONFIGS / "vae-mnist.yaml", ["train.lr=1e-4", "model.beta=2E+0"])
    assert cfg.train.lr == pytest.approx(1e-4) and cfg.model.beta == 2.0
    with pytest.raises(ConfigError, match="train.epochs.*'1e3'"):
        load_config(CONFIGS / "vae-mnist.yaml", ["train.epochs=1e3"])
    with pytest.raises(ConfigError, match="train.lr.*'1e-4x'"):
        load_config(CONFIGS / "vae-mnist.yaml", ["train.lr=1e-4x"])


@pytest.mark.parametrize("override, words", [
    ("model.bogus=3", ["model.bogus", "latent_dim"]),
    ("trian.epochs=3", ["trian", "train"]),
    ("train.epochs=three", ["train.epochs", "'three'", "integer"]),
    ("train.epochs=1.5", ["train.epochs", "integer"]),
    ("train.lr=-1", ["train.lr", "-1", "> 0"]),
    ("train.batch_size=0", ["train.batch_size", ">= 1"]),
    ("train.precision=fp8", ["train.precision", "'fp32'", "'bf16'"]),
    ("data.image_size=30", ["data.image_size", "30", "multiple of 4"]),
    ("model.family=diffusion", ["model.family", "diffusion", "vae"]),
    ("model.dropout=1.0", ["model.dropout", "[0, 1)"]),
    ("model.preset=huge", ["model.preset", "lab-report", "large"]),
    ("train.epochs", ["key=value"]),
    ("train.epochs.x=1", ["train.epochs", "not a section"]),
    ("data.emoji_framing=content", ["data.emoji_framing", "'native' with data.name=mnist"]),
    ("data.emoji_framing=tight", ["data.emoji_framing", "'native'", "'content'"]),
])
def test_bad_values_name_key_value_and_allowed(override, words):
    from genlab.registry import build_model

    with pytest.raises(ConfigError) as err:
        build_model(load_config(CONFIGS / "vae-mnist.yaml", [override]))
    for word in words:
        assert word in str(err.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        read_yaml(bad)
    assert f'in "{bad}", line 2' in str(err.value) and "<unicode string>" not in str(err.value)
    run = tmp_path / "run"  # a run directory given where its config.yaml was meant
    run.mkdir()
    (run / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match=f"is a folder; give a YAML file; {run / 'config.yaml'} is a run's config"):
        read_yaml(run)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(bad)


def test_apply_overrides_does_not_mutate_input():
    data = {"train": {"epochs": 3}}
    out = apply_overrides(data, ["train.epochs=5", "new.key=x"])
    assert data == {"train": {"epochs": 3}} and out["train"]["epochs"] == 5 and out["new"]["key"] == "x"


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(["seed", "train.epochs", "train.lr", "train.batch_size", "data.limit", "model.latent_dim",
                            "model.beta", "data.binarize", "model.encoder_hidden", "train.precision", "x.y", "model"]),
       raw=st.one_of(st.text(max_size=12), st.integers(-5, 5).map(str), st.floats(allow_nan=True).map(str),
                     st.lists(st.integers(-3, 300), max_size=3).map(str)))
def test_any_override_is_accepted_or_a_config_error(key, raw):
    """Property: a user-typed override never produces anything but a valid config or a ConfigError."""
    try:
        load_config(CONFIGS / "vae-mnist.yaml", [f"{key}={raw}"])
    except ConfigError as exc:
        assert str(exc)


def test_seed_is_an_alias_of_the_lab_report_presets():
    for name in ("vae-mnist", "cvae-mnist", "fcgan-mnist"):
        assert load_config(CONFIGS / f"{name}.yaml", ["model.preset=seed"]).model.preset == "lab-report"
    gan = load_config(CONFIGS / "dcgan-mnist.yaml", ["model.preset=seed", "data.image_size=96"])
    assert gan.model.preset == "lab-report" and gan.model.width == 32  # the seed DCGAN's defaults


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_builds_its_model(path, tmp_path):
    from genlab.registry import build_model

    cfg = load_config(path, [f"data.root={tmp_path}"] if "folder" in path.name else [])
    counts = build_model(cfg).parameter_counts()
    assert counts and all(n > 0 for n in counts.values())


def test_data_root_is_absolute_and_only_where_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(CONFIGS / "cyclegan-folder.yaml", ["data.root=horses"])
    assert cfg.data.root == str(tmp_path / "horses")  # saved so, the run finds its data from any folder
    with pytest.raises(ConfigError, match="data.root.*null with data.name=mnist, which ships its own images"):
        load_config(CONFIGS / "vae-mnist.yaml", ["data.root=my_images"])  # would have trained on MNIST silently
    with pytest.raises(ConfigError, match="data.binarize.*'none' with data.channels=3"):
        load_config(CONFIGS / "vae-mnist.yaml", ["data.channels=3"])  # the VAE configs binarise: say so for colour
