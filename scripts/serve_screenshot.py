"""The README's screenshot of `tadsr serve`: the page after upscaling the README's example.

    python scripts/serve_screenshot.py [--out docs/images/serve_page.png]
        [--phone-out docs/images/serve_page_phone.png]

Starts `tadsr serve` on a free port, drives Debian's chromium (/usr/bin/chromium) with
Playwright, uploads examples/astronaut_lr.png with the default options, waits for the
result and saves the page as a 256-colour PNG.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "serve_page.png"))
    ap.add_argument("--phone-out", default=str(ROOT / "docs" / "images" / "serve_page_phone.png"),
                    help="the same page at a phone's size (390 x 844)")  # fmt: skip
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen(
        [sys.executable, "-m", "tadsr.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = re.search(r"http://\S+", server.stdout.readline()).group(0)
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile,
                executable_path=args.chromium,
                headless=True,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync"],
                viewport={"width": 820, "height": 750},
            )  # fmt: skip
            page = ctx.new_page()
            for _ in range(100):  # the socket is bound before the app answers
                try:
                    page.goto(url)
                    break
                except Exception:
                    page.wait_for_timeout(100)
            page.wait_for_selector("#model option", state="attached")
            page.set_input_files("#files", str(ROOT / "examples" / "astronaut_lr.png"))
            page.locator(".job.done img.after").wait_for(timeout=120_000)
            page.wait_for_function("document.querySelector('.job.done img.after').complete")
            _shot(page, args.out)
            page.set_viewport_size({"width": 390, "height": 844})
            page.locator(".job.done .compare").scroll_into_view_if_needed()
            _shot(page, args.phone_out)
            ctx.close()
    finally:
        server.terminate()
        server.wait()
    for out in (args.out, args.phone_out):
        print(f"{out}: {Path(out).stat().st_size / 1024:.0f} KB")


def _shot(page, out: str) -> None:
    with tempfile.NamedTemporaryFile(suffix=".png") as shot:
        page.screenshot(path=shot.name)
        img = Image.open(shot.name).convert("RGB")
        img.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


if __name__ == "__main__":
    main()
