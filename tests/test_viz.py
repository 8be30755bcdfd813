"""Image grids and plots: shapes, pixel placement, PNG round trips, and that every plot renders."""

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.viz import (
    grid_to_uint8,
    make_grid,
    pca_2d,
    plot_image_grid_figure,
    plot_latent_scatter,
    plot_lines,
    plot_loss_curves,
    save_image_grid,
    side_by_side,
)


def numbered(n, c=1, h=4, w=5):
    """Image k is filled with the constant (k + 1) / 100, so it can be found in a grid."""
    return (torch.arange(1, n + 1, dtype=torch.float32) / 100).view(n, 1, 1, 1).expand(n, c, h, w).clone()


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def test_make_grid_shape_and_placement():
    images = numbered(10, c=3, h=4, w=5)
    grid = make_grid(images, nrow=4, padding=2, pad_value=1.0)
    # 4 columns, ceil(10 / 4) = 3 rows
    assert grid.shape == (3, 3 * (4 + 2) + 2, 4 * (5 + 2) + 2)
    for k in range(10):
        y, x = 2 + (k // 4) * 6, 2 + (k % 4) * 7
        assert torch.all(grid[:, y : y + 4, x : x + 5] == (k + 1) / 100), k
    # padding and the two unused cells of the last row keep pad_value
    assert torch.all(grid[:, :2, :] == 1.0) and torch.all(grid[:, :, :2] == 1.0)
    assert torch.all(grid[:, 14:18, 2 + 2 * 7 :] == 1.0)
    # padding pixels in total: everything but the 10 images
    assert int((grid == 1.0).sum()) == grid.numel() - 10 * 3 * 4 * 5


def test_make_grid_clamps_and_fewer_images_than_nrow():
    images = torch.tensor([-1.0, 2.0, float("nan")]).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    grid = make_grid(images, nrow=8, padding=0)
    assert grid.shape == (1, 2, 6)  # only 3 columns
    assert grid.min() >= 0 and grid.max() <= 1
    assert grid[0, 0, :].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("shape", [(3, 28, 28), (2, 2, 8, 8), (0, 1, 8, 8)])
def test_make_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError):
        make_grid(torch.zeros(shape), nrow=2)


def test_grid_to_uint8_rounds_and_keeps_channels():
    grey = torch.tensor([0.0, 0.5, 1.0, 1 / 255 * 0.49]).view(1, 1, 4)
    assert grid_to_uint8(grey).tolist() == [[0, 128, 255, 0]]
    rgb = grid_to_uint8(torch.zeros(3, 2, 5))
    assert rgb.shape == (2, 5, 3) and rgb.dtype == np.uint8


def test_save_image_grid_round_trip_and_deterministic(tmp_path):
    images = torch.rand(10, 1, 4, 5, generator=torch.Generator().manual_seed(0))
    path = save_image_grid(images, tmp_path / "deep" / "dir" / "grid.png", nrow=4, padding=2)
    assert path == tmp_path / "deep" / "dir" / "grid.png"
    assert not path.with_name("grid.png.tmp").exists()
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (30, 20)
        pixels = np.asarray(image)
    assert np.array_equal(pixels, grid_to_uint8(make_grid(images, nrow=4)))
    assert pixels[2:6, 2:7].tolist() == torch.round(images[0, 0] * 255).to(torch.uint8).tolist()

    again = save_image_grid(images.clone(), tmp_path / "again.png", nrow=4, padding=2)
    assert again.read_bytes() == path.read_bytes()


def test_save_image_grid_upscale_and_rgb(tmp_path):
    images = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    path = save_image_grid(images, tmp_path / "rgb.png", nrow=3, padding=1, upscale=3)
    with Image.open(path) as image:
        assert image.mode == "RGB" and image.size == (16 * 3, 6 * 3)  # 3 * (4 + 1) + 1 = 16 wide
        pixels = np.asarray(image)
    small = grid_to_uint8(make_grid(images, nrow=3, padding=1))
    assert np.array_equal(pixels[::3, ::3], small)
    assert np.array_equal(pixels[2::3, 1::3], small)
    with pytest.raises(ValueError):
        save_image_grid(images, tmp_path / "bad.png", nrow=3, upscale=0)


def test_side_by_side_rows():
    originals = numbered(6)
    reconstructions = -numbered(6)  # negative: distinguishable, side_by_side does not clamp
    pairs = side_by_side(originals, reconstructions, ncols=3)
    assert pairs.shape == (12, 1, 4, 5)
    values = pairs[:, 0, 0, 0].mul(100).round().int().tolist()
    assert values == [1, 2, 3, -1, -2, -3, 4, 5, 6, -4, -5, -6]


def test_side_by_side_pads_a_short_last_row():
    pairs = side_by_side(numbered(4), -numbered(4), ncols=3, fill=0.5)
    assert pairs.shape == (12, 1, 4, 5)
    values = pairs[:, 0, 0, 0].tolist()
    assert [round(v * 100) for v in values[:6]] == [1, 2, 3, -1, -2, -3]
    assert round(values[6] * 100) == 4 and round(values[9] * 100) == -4
    assert values[7:9] == [0.5, 0.5] and values[10:] == [0.5, 0.5]
    with pytest.raises(ValueError):
        side_by_side(numbered(4), numbered(5), ncols=3)


HISTORY = [
    {"epoch": e, "train/recon": 150.0 / e, "test/recon": 148.0 / e, "train/kl": 5.0 + e, "test/kl": 5.5 + e}
    for e in range(1, 6)
]


def test_plot_loss_curves(tmp_path):
    path = plot_loss_curves(HISTORY, ["recon", "kl"], tmp_path / "loss.png", title="VAE", ylabel="nats / image")
    assert_png(path)


def test_plot_loss_curves_missing_values(tmp_path):
    history = [dict(record) for record in HISTORY]
    del history[1]["test/recon"]
    history[2]["train/kl"] = None
    history[3]["test/kl"] = float("nan")
    history.append({"epoch": 6})
    history.append({"train/loss": 1.0})  # no epoch: uses the record index
    assert_png(plot_loss_curves(history, ["recon", "kl", "loss", "absent"], tmp_path / "a.png"))
    assert_png(plot_loss_curves(history, ["absent"], tmp_path / "b.png"))
    assert_png(plot_loss_curves([], ["recon"], tmp_path / "c.png"))


def test_pca_2d():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 5)) * np.array([5.0, 0.1, 2.0, 0.1, 0.1])
    (projected,) = pca_2d(z)
    assert projected.shape == (500, 2)
    assert np.allclose(projected.mean(axis=0), 0, atol=1e-9)
    assert projected[:, 0].var() > projected[:, 1].var() > 3.0
    train, test = pca_2d(z, z, z[:7] + 1.0)
    assert np.allclose(train, projected) and test.shape == (7, 2)
    assert np.allclose(pca_2d(z)[0], pca_2d(z.copy())[0])  # sign convention is fixed


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_plot_latent_scatter(tmp_path, dim):
    rng = np.random.default_rng(dim)
    z_train, z_test = rng.normal(size=(300, dim)), rng.normal(size=(120, dim))
    y_train, y_test = rng.integers(0, 10, 300), torch.from_numpy(rng.integers(0, 10, 120))
    path = plot_latent_scatter(z_train, y_train, torch.from_numpy(z_test), y_test, tmp_path / f"z{dim}.png",
                               max_points=100, title=f"D={dim}")
    assert_png(path)


def test_plot_image_grid_figure(tmp_path):
    images = torch.rand(100, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    latent = plot_image_grid_figure(images, 10, tmp_path / "latent.png", title="latent grid",
                                    xlabel="z1", ylabel="z2", extent=(-2, 2, -2, 2))
    assert_png(latent)
    per_class = plot_image_grid_figure(images[:30].expand(30, 3, 8, 8), 3, tmp_path / "rows.png",
                                       ylabel="class", row_labels=range(10))
    assert_png(per_class)
    with pytest.raises(ValueError):
        plot_image_grid_figure(images, 10, tmp_path / "bad.png", row_labels=range(9))


def test_plot_lines(tmp_path):
    series = {"D(real)": [0.8, 0.7, None, 0.6], "D(fake)": [0.2, 0.3, 0.35, float("nan")]}
    assert_png(plot_lines([1, 2, 3, 4], series, tmp_path / "lines.png", "epoch", "mean D output", title="D"))
    assert_png(plot_lines([1e-4, 1e-3, 1e-2], {"fid": [30, 20, 25]}, tmp_path / "sweep.png", "lr", "FID", logx=True))
    with pytest.raises(ValueError):
        plot_lines([1, 2], {"a": [1.0]}, tmp_path / "bad.png", "x", "y")
