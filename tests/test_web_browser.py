"""The `tadsr serve` page in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright; CI installs both). Nothing here skips: without the browser these tests fail.

A screenshot of the page is kept in outputs/test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests._web_helpers import Server, png_bytes

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "outputs" / "test-artifacts"
CHROMIUM = os.environ.get("TADSR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("serve-tmp"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (CI's .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1000, "height": 900},
        )
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, photo) -> Path:
    """A 48 x 48 crop of a real photo, a text file named like an image, and their folder."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "face.png").write_bytes(png_bytes(np.ascontiguousarray(photo[60:108, 200:248])))
    (d / "notes.png").write_bytes(b"this is a text file, not a picture\n")
    return d


def open_page(browser, server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#model option", state="attached")
    return page, errors


def test_upload_compare_download_equals_the_cli(browser, server, inputs, tmp_path):
    page, errors = open_page(browser, server)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.set_input_files("#files", str(inputs / "face.png"))
    card = page.locator(".job.done")
    card.wait_for(timeout=120_000)
    assert card.locator(".name").inner_text() == "face.png"
    assert card.locator(".state").inner_text() == "done"
    page.wait_for_function(
        "[...document.querySelectorAll('.job.done img')].every(i => i.complete && i.naturalWidth)"
    )
    assert card.locator("img.after").evaluate("i => [i.naturalWidth, i.naturalHeight]") == [
        192, 192
    ]  # fmt: skip
    # the before / after slider and the zoom on a clicked region
    card.locator(".split").fill("30")
    assert "30%" in card.locator("img.after").evaluate("i => i.style.clipPath")
    card.locator(".compare").click(position={"x": 40, "y": 60})
    assert card.locator(".zoom").input_value() == "4"
    assert card.locator(".stage").evaluate("s => s.style.transform") == "scale(4)"
    card.locator(".zoom").select_option("2")
    assert card.locator(".stage").evaluate("s => s.style.transform") == "scale(2)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)

    with page.expect_download() as dl:
        card.locator("a.download").click()
    got = tmp_path / "download.png"
    dl.value.save_as(got)
    assert dl.value.suggested_filename == "face_x4.png"
    with page.expect_download() as dl:
        page.click("#zip")
    zipped = tmp_path / "all.zip"
    dl.value.save_as(zipped)

    cli_out = tmp_path / "cli"
    subprocess.run(
        [sys.executable, "-m", "tadsr.cli", "upscale", str(inputs / "face.png"), "-o",
         str(cli_out), "-q", "--device", "cpu"],
        check=True,
    )  # fmt: skip
    want = np.asarray(Image.open(cli_out / "face.png"))
    web = np.asarray(Image.open(got))
    assert web.shape == (192, 192, 3) == (4 * 48, 4 * 48, 3)
    np.testing.assert_array_equal(web, want)  # bit for bit
    with zipfile.ZipFile(zipped) as zf:
        assert zf.namelist() == ["face_x4.png"]
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(zf.read("face_x4.png")))),
                                      want)  # fmt: skip
    assert all(u.startswith(f"http://127.0.0.1:{server.port}/") for u in requests), requests
    assert errors == []
    page.close()


def test_a_non_image_shows_one_clear_message(browser, server, inputs):
    page, errors = open_page(browser, server)
    page.set_input_files("#files", str(inputs / "notes.png"))
    card = page.locator(".job").first
    card.locator(".error").wait_for(timeout=30_000)
    assert card.locator(".error").inner_text() == (
        "notes.png: not an image, or an unsupported format (PNG, JPEG, WebP, BMP, TIFF are "
        "supported)"
    )
    assert card.locator(".state").inner_text() == "failed"
    assert page.locator("[role=alert]:visible").count() == 1  # one message, no other noise
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-error.png"), full_page=True)
    assert errors == []
    page.close()


def test_closing_the_tab_stops_its_job(browser, server, inputs):
    page, _ = open_page(browser, server)
    page.select_option("#model", "tadsr-small-teacher")
    assert page.locator("#steps").is_enabled()
    page.fill("#steps", "15")
    page.set_input_files("#files", str(inputs / "face.png"))
    card = page.locator(".job").first
    page.wait_for_function("document.querySelector('.job progress').value >= 1", timeout=120_000)
    assert card.locator(".state").inner_text().startswith("upscaling: ")
    job_id = card.get_attribute("data-id")
    page.close(run_before_unload=True)
    closed = time.monotonic()
    # pagehide sends a cancel beacon; the server's heartbeat (20 s) is the fallback
    deadline = closed + 15
    state = None
    while time.monotonic() < deadline:
        status, state = server.json("GET", f"/api/jobs/{job_id}")
        if state["state"] != "running":
            break
        time.sleep(0.2)
    assert state["state"] == "cancelled", state
    assert state["message"] == "cancelled"  # by the page's beacon, not the heartbeat
    assert state["done"] < state["total"] == 15
