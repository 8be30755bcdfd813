"""``genlab report``: one self-contained HTML file per run or comparison, parsed back with html.parser.

Checks that every figure, preview and metric of the runs is in the file, that it loads nothing (no
http(s) source or link, no script, no @import or url() in its style), that hostile run names and file
names stay text, that runs with missing pieces still render and say what is missing, that a folder that
is not a run is a clear error, and that the loop logs hyperparameters with final losses for TensorBoard.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import tiny_runs
from genlab.analysis.run_figures import write_figures
from genlab.cli import app
from genlab.errors import GenlabError
from genlab.report import render_report, write_report
from genlab.report.compare import format_value, metric_direction, unique_labels
from genlab.runs import load_run

HOSTILE = "<script>alert(1)</script>\"'&"


class Page(HTMLParser):
    """The parts of an HTML page the tests look at: tags with attributes, text, style sheets, table cells."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self.cells: list[tuple[str, str, str]] = []  # (tag, class, text) of th/td
        self._open: list[list] = []
        self._in_style = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"
        if tag in ("td", "th"):
            self._open.append([tag, dict(attrs).get("class") or "", ""])

    def handle_endtag(self, tag):
        self._in_style = False
        if tag in ("td", "th") and self._open:
            kind, cls, text = self._open.pop()
            self.cells.append((kind, cls, text.strip()))

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)
        for cell in self._open:
            cell[2] += data

    @property
    def all_text(self) -> str:
        return " ".join(self.text)

    def images(self) -> dict[str, str]:
        """alt text -> src of every img (the last one of an alt text)."""
        return dict(self.image_list())

    def image_list(self) -> list[tuple[str, str]]:
        """``(alt, src)`` of every img, in order."""
        return [(attrs.get("alt") or "", attrs.get("src") or "") for tag, attrs in self.tags if tag == "img"]


def assert_self_contained(html: str, page: Page) -> None:
    """Nothing in the page is fetched: no script, no external link, data: images only, no @import or url()."""
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags and "object" not in tags
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "action", "data"):
            value = attrs.get(name)
            if value is None:
                continue
            assert not re.match(r"\s*(https?:)?//", value, re.IGNORECASE), (tag, name, value[:80])
            if name == "src":
                assert value.startswith("data:image/png;base64,"), (tag, value[:80])
            if name == "href":
                assert value.startswith("#"), value
        assert not any(key.startswith("on") for key in attrs), (tag, attrs)  # no event handlers
    style = " ".join(page.styles)
    assert "@import" not in style and "url(" not in style
    assert not re.search(r"https?://", html.replace("http://www.w3.org", ""))


def png_bytes(src: str) -> bytes:
    return base64.b64decode(src.split(",", 1)[1])


def fake_eval(run_dir: Path, **metrics) -> dict:
    """An eval.json as `genlab eval` writes it (its metrics given; a protocol record), at the run's epoch."""
    _, _, state = load_run(run_dir)
    record = {"run": str(run_dir), "checkpoint": "step_x.safetensors", "epoch": state["loop"]["epoch"],
              "step": state["loop"]["step"], "family": "gan", "eval_config": {"num_samples": 200}, "seconds": 1.5,
              "metrics": {**metrics, "protocol": {"num_samples": 200, "reference": "mnist/test",
                                                  "features": {"evaluator": {"version": "fingerprint-98fe8ca2"}}}}}
    (run_dir / "eval.json").write_text(json.dumps(record))
    return record


# --- tiny runs, trained once for the module ------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A VAE with figures and an eval.json, and two GANs (different learning rates) with eval.json files."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report_runs")
    vae = tiny_runs.train_vae(root / "vae")
    write_figures(vae)
    fake_eval(vae, **{"test/neg_elbo": 250.5, "test/nll": 240.25, "test/nll_stderr": 1.5, "evaluator": "mnist",
                      "recon_label_kept": 0.5})
    gans = {}
    for name, lr in (("gan-a", "0.002"), ("gan-b", "0.0002")):
        gans[name] = tiny_runs.train_gan(root / name, "train.epochs=2", f"model.g_lr={lr}")
        write_figures(gans[name])
    fake_eval(gans["gan-a"], fid_evaluator=120.0, precision_evaluator=0.25, kid_evaluator_std=0.5)
    fake_eval(gans["gan-b"], fid_evaluator=80.0, precision_evaluator=0.75, kid_evaluator_std=0.1)
    return {"vae": vae, **gans}


# --- one run ----------------------------------------------------------------------------------------------


def test_one_run_report_holds_every_figure_preview_metric_and_network(runs, tmp_path):
    run = runs["vae"]
    out = write_report([run], tmp_path / "report.html")
    html = out.read_text()
    page = Page(html)
    assert_self_contained(html, page)
    images = page.images()

    figures = sorted((run / "figures").glob("*.png"))
    assert {f.name for f in figures} >= {"latent_scatter.png", "latent_grid.png", "reconstructions.png"}
    for figure in figures:  # every figure, byte for byte
        assert png_bytes(images[figure.name]) == figure.read_bytes(), figure.name
    previews = sorted((run / "samples").glob("epoch_*.png"))
    assert [p.name for p in previews] == ["epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    for preview in previews:  # three epochs: first, middle and last are all there
        assert png_bytes(images[preview.name]) == preview.read_bytes()
    assert "loss curves of vae" in images

    evaluation = json.loads((run / "eval.json").read_text())
    metric_rows = {cells[0]: cells[1] for cells in _split_rows(page, "metric")}
    for name, value in evaluation["metrics"].items():
        if name != "protocol":
            assert metric_rows[name] == format_value(value), name
    assert metric_rows["test/nll"] == "240.2" and metric_rows["evaluator"] == "mnist"
    assert "fingerprint-98fe8ca2" in page.all_text and '"reference": "mnist/test"' in page.all_text  # the protocol

    _, model, _ = load_run(run)
    networks = {cells[0]: cells[1] for cells in _split_rows(page, "network")}
    for name, count in model.parameter_counts().items():
        assert networks[name] == f"{count:,}"
    assert "train:" in page.all_text and "lr:" in page.all_text  # the config, as YAML
    assert "Missing or incomplete" not in page.all_text


def _split_rows(page: Page, first_header: str) -> list[list[str]]:
    """The body rows (cell texts) of the first table whose first header cell is ``first_header``."""
    cells = page.cells
    start = next(i for i, (kind, _, text) in enumerate(cells) if kind == "th" and text == first_header)
    width = 1
    while start + width < len(cells) and cells[start + width][0] == "th":
        width += 1
    body, rows = cells[start + width:], []
    for i in range(0, len(body), width):
        row = body[i:i + width]
        if len(row) < width or row[0][0] != "td":
            break
        rows.append([text for _, _, text in row])
    return rows


# --- several runs -----------------------------------------------------------------------------------------


def test_comparison_ranks_each_metric_and_shows_the_config_keys_that_differ(runs, tmp_path):
    html = render_report([runs["gan-a"], runs["gan-b"]], title="two GANs")
    page = Page(html)
    assert_self_contained(html, page)
    header_at = next(i for i, (kind, _, text) in enumerate(page.cells) if kind == "th" and text == "run")
    width = 1
    while page.cells[header_at + width][0] == "th":
        width += 1
    headers = [text for _, _, text in page.cells[header_at:header_at + width]]
    assert headers[1:4] == ["fid_evaluator ↓", "precision_evaluator ↑", "kid_evaluator_std"]
    assert "model.g_lr" in headers and "seed" not in headers and "model.width" not in headers  # only what differs
    rows = page.cells[header_at + width:header_at + 3 * width]
    cell = {(r, headers[c]): rows[r * width + c] for r in range(2) for c in range(width)}
    assert "best" in cell[(1, "fid_evaluator ↓")][1] and "best" not in cell[(0, "fid_evaluator ↓")][1]  # lower wins
    assert "best" in cell[(1, "precision_evaluator ↑")][1] and "★" in cell[(1, "precision_evaluator ↑")][2]
    assert not any("best" in cell[(r, "kid_evaluator_std")][1] for r in range(2))  # a spread is not ranked
    assert cell[(0, "model.g_lr")][2] == "0.002" and cell[(1, "model.g_lr")][2] == "0.0002"
    overlays = [alt for alt in page.images() if alt.endswith(" of every run")]
    assert overlays == [f"{name} of every run" for name in ("d_loss", "g_loss", "d_real", "d_fake")]
    for run in ("gan-a", "gan-b"):  # and each run's own section, with its figures
        for figure in (runs[run] / "figures").glob("*.png"):
            assert any(figure.read_bytes() == png_bytes(src) for _, src in page.image_list()), figure


def test_metric_directions_and_run_labels():
    lower = ["fid_evaluator", "kid_AtoB", "test/nll", "test/neg_elbo", "cycle_l1_AtoB", "l1_BtoA", "loss", "test/recon"]
    higher = ["ssim_AtoB", "psnr_BtoA", "conditional_accuracy", "precision_inception", "recall_evaluator",
              "is_evaluator", "r_precision", "recon_label_kept"]
    unranked = ["kid_evaluator_std", "l1_AtoB_se", "test/nll_stderr", "test/nll_images", "conditional_samples",
                "time/nll_s", "fid_AtoB_input", "ssim_AtoB_input", "r_precision_real", "r_precision_shuffled", "test/kl"]
    assert [metric_direction(n) for n in lower] == ["lower"] * len(lower)
    assert [metric_direction(n) for n in higher] == ["higher"] * len(higher)
    assert [metric_direction(n) for n in unranked] == [None] * len(unranked)
    assert unique_labels([Path("/r/ablation/lsgan/seed0"), Path("/r/ablation/hinge/seed0")]) == ["lsgan/seed0", "hinge/seed0"]
    assert unique_labels([Path("/r/a"), Path("/r/b")]) == ["a", "b"]


# --- runs with missing pieces, folders that are not runs, hostile names ----------------------------------


def test_a_run_stopped_mid_epoch_never_evaluated_without_figures_still_renders(tmp_path):
    run = tiny_runs.train_vae(tmp_path / "stopped", "train.epochs=1", "train.checkpoint_every_steps=1")
    checkpoints = sorted((run / "checkpoints").glob("step_*.safetensors"))
    checkpoints[-1].unlink()  # the end-of-epoch checkpoint: the newest is now one of the middle of epoch 1
    (run / "metrics.jsonl").write_text("")  # the epoch never finished
    shutil.rmtree(run / "samples")
    html = render_report([run])
    page = Page(html)
    assert_self_contained(html, page)
    text = page.all_text
    assert "Missing or incomplete" in text
    assert "training stopped in the middle of epoch 1 of 1 (after batch 3, step 3)" in text
    assert "never evaluated (no eval.json)" in text and f"genlab eval {run}" in text
    assert "no analysis figures" in text and "no preview grids" in text and "no loss curves" in text
    assert {cells[0] for cells in _split_rows(page, "network")} >= {"encoder", "decoder"}

    shutil.rmtree(run / "checkpoints")  # only config.yaml left: networks are counted from it
    text = Page(render_report([run])).all_text
    assert "no checkpoint: training saved no weights yet" in text and "encoder" in text


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path, runs):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"")
    with pytest.raises(GenlabError, match=r"photos is not a run directory: it has neither config.yaml nor checkpoints/"):
        render_report([tmp_path / "photos"])
    with pytest.raises(GenlabError, match="run directory not found"):
        render_report([runs["vae"], tmp_path / "nowhere"])
    result = CliRunner().invoke(app, ["report", str(tmp_path / "photos"), "-o", str(tmp_path / "r.html")])
    assert result.exit_code != 0 and isinstance(result.exception, GenlabError)
    result = CliRunner().invoke(app, ["report", str(runs["gan-a"]), str(runs["gan-b"])])
    assert isinstance(result.exception, GenlabError) and "-o/--output" in str(result.exception)
    assert not (tmp_path / "r.html").exists()


def test_hostile_run_and_file_names_are_escaped(runs, tmp_path):
    hostile = tmp_path / HOSTILE
    shutil.copytree(runs["gan-a"], hostile)
    config = yaml.safe_load((hostile / "config.yaml").read_text())
    config["name"] = HOSTILE
    (hostile / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.rmtree(hostile / "checkpoints")  # the config (and its name) now comes from config.yaml
    figure = next((hostile / "figures").glob("*.png"))
    figure.rename(hostile / "figures" / "<img src=x onerror=alert(2)>.png")
    html = render_report([hostile, runs["gan-b"]], title=HOSTILE)
    page = Page(html)
    assert_self_contained(html, page)  # no script tag, no event handler attribute
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE in page.all_text  # shown as text: the run's label, its config's name, the title
    assert "<img src=x onerror=alert(2)>.png" in page.images()  # the file name is an alt text, not markup
    assert [t for t, _ in page.tags].count("title") == 1


# --- the command line, TensorBoard -----------------------------------------------------------------------


def test_cli_report_writes_the_file_and_documents_every_option(runs, tmp_path):
    out = tmp_path / "cmp.html"
    result = CliRunner().invoke(app, ["report", str(runs["gan-a"]), str(runs["gan-b"]), "-o", str(out),
                                      "--title", "GAN lr"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "<title>GAN lr</title>" in out.read_text()
    result = CliRunner().invoke(app, ["report", str(runs["vae"])])  # one run: RUN_DIR/report.html by default
    assert result.exit_code == 0 and (runs["vae"] / "report.html").is_file()
    help_text = CliRunner().invoke(app, ["report", "--help"]).output
    for option, words in (("--output", "HTML file to write"), ("--title", "Title of the report"),
                          ("RUN_DIR", "run directories")):
        assert option in help_text
        assert words in help_text


def test_training_logs_hyperparameters_with_final_losses_for_tensorboard(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    folder = runs["gan-a"] / "tensorboard" / "hparams"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in session.hparams.items()}
    assert hparams["model.g_lr"] == pytest.approx(0.002) and hparams["model.family"] == "gan"
    assert hparams["data.test_limit"] == 64 and hparams["train.epochs"] == 2
    final = json.loads((runs["gan-a"] / "metrics.jsonl").read_text().splitlines()[-1])
    scalars = {tag: events.Scalars(tag)[-1] for tag in events.Tags()["scalars"]}
    assert scalars["train/d_loss"].value == pytest.approx(final["train/d_loss"], rel=1e-6)
    assert scalars["train/d_loss"].step == final["step"]
