"""Screenshots for the README: the web demo and a report, taken in headless Chromium with Playwright.

    python scripts/screenshots.py --demo RUN_DIR [RUN_DIR ...] --report RUN_DIR [RUN_DIR ...] [--out docs]

``--demo``: serves ``genlab demo`` on a free loopback port, opens the first run's tab, clicks the middle
right of its latent plane (if it has one) and saves ``demo.png``; ``--report``: writes ``genlab report``
of the runs to a temporary file and saves the top of it as ``report.png``. Needs the test extras
(Playwright) and Debian's ``chromium`` (``scripts/setup.sh --test``).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_screenshot(browser, run_dirs: list[str], out: Path) -> None:
    import gradio as gr

    from genlab.demo.app import build_demo, offline_theme

    port = free_port()
    demo = build_demo(run_dirs)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
                theme=offline_theme(gr))
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}", wait_until="networkidle")
        plane = page.locator("#run1_latent_plane img")
        if plane.count():
            box = plane.bounding_box()
            plane.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.4})
            page.wait_for_timeout(1500)
            page.locator("#run1_latent_plane").scroll_into_view_if_needed()
            page.evaluate("document.querySelector('#run1_latent_plane').scrollIntoView({block: 'center'})")
        page.screenshot(path=str(out))
    finally:
        demo.close()


def report_screenshot(browser, run_dirs: list[str], out: Path) -> None:
    from genlab.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(run_dirs, Path(tmp) / "report.html")
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(report.as_uri(), wait_until="load")
        page.screenshot(path=str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", nargs="+", default=[], help="run directories to show in the demo")
    parser.add_argument("--report", nargs="+", default=[], help="run directories to report on")
    parser.add_argument("--out", default="docs", help="folder for demo.png and report.png (default docs)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        if args.demo:
            demo_screenshot(browser, args.demo, out / "demo.png")
            print(out / "demo.png")
        if args.report:
            report_screenshot(browser, args.report, out / "report.png")
            print(out / "report.png")
        browser.close()


if __name__ == "__main__":
    main()
