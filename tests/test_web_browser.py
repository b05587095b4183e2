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
from tests._web_helpers import module_server, png_bytes

from tadsr.models import registry

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "outputs" / "test-artifacts"
CHROMIUM = os.environ.get("TADSR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


server = pytest.fixture(scope="module")(module_server)


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
    """48 x 48 crops of a real photo, and bad files: a text file named like an image, a
    truncated PNG, a decompression bomb (100 MP in 12 kB), a 2 MB file, an empty file."""
    d = tmp_path_factory.mktemp("inputs")
    for i, name in enumerate(["face.png", "tab1.png", "tab2.png"]):
        (d / name).write_bytes(png_bytes(np.ascontiguousarray(photo[60 + 50 * i :][:48, 200:248])))
    # the teacher's 15 steps on 200 x 200 take long enough to be seen queued and cancelled
    (d / "slow.png").write_bytes(png_bytes(np.ascontiguousarray(photo[:200, 150:350])))
    (d / "notes.png").write_bytes(b"this is a text file, not a picture\n")
    (d / "truncated.png").write_bytes((d / "face.png").read_bytes()[:3000])
    buf = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buf, format="PNG")
    (d / "bomb.png").write_bytes(buf.getvalue())
    (d / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2 * 2**20))
    (d / "empty.png").write_bytes(b"")
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


BAD_FILES = {
    "notes.png": "notes.png: not an image, or an unsupported format (PNG, JPEG, WebP, BMP, "
    "TIFF are supported)",
    "truncated.png": "truncated.png: corrupt or truncated image (Truncated File Read)",
    "bomb.png": "bomb.png: too large: 10000x10000 = 100,000,000 pixels exceeds the limit of "
    "64,000,000 (raise it with tadsr serve --max-pixels)",
    "big.png": "big.png: the file is larger than the upload limit of 1 MB (tadsr serve "
    "--max-upload-mb)",
    "empty.png": "empty.png: empty file (0 bytes)",
}


def test_each_bad_file_shows_one_clear_message(browser, server, inputs):
    """All chosen at once, beside a good photo: each card shows its own single message."""
    page, errors = open_page(browser, server)
    page.set_input_files("#files", [str(inputs / n) for n in [*BAD_FILES, "face.png"]])
    page.locator(".job.done").wait_for(timeout=120_000)
    for name, message in BAD_FILES.items():
        card = page.locator(".job", has=page.locator(".name", has_text=name))
        card.locator(".error").wait_for(timeout=30_000)
        assert card.locator(".error").inner_text() == message
        assert card.locator(".state").inner_text() == "failed"
    assert page.locator("[role=alert]:visible").count() == len(BAD_FILES)  # one per file
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-errors.png"), full_page=True)
    assert errors == []
    assert server.json("GET", "/api/config")[0] == 200  # the server goes on
    page.close()


def test_tabs_queue_behind_a_running_job_and_cancel_lets_them_run(browser, server, inputs):
    first, _ = open_page(browser, server)
    first.select_option("#model", "tadsr-small-teacher")
    first.set_input_files("#files", str(inputs / "slow.png"))
    first.wait_for_function("document.querySelector('.job progress').value >= 1",
                            timeout=120_000)  # fmt: skip
    tabs = [open_page(browser, server)[0] for _ in range(2)]
    for i, tab in enumerate(tabs, 1):
        tab.set_input_files("#files", str(inputs / f"tab{i}.png"))
    for tab in tabs:
        tab.wait_for_function("document.querySelector('.job .state').textContent"
                              ".startsWith('waiting in the queue')")  # fmt: skip
    states = sorted(t.locator(".job .state").inner_text() for t in tabs)
    assert states == [
        "waiting in the queue: 1 job ahead", "waiting in the queue: 2 jobs ahead"
    ]  # fmt: skip
    first.click(".job .cancel")
    first.wait_for_function("document.querySelector('.job .state').textContent === 'cancelled'")
    for tab in tabs:
        tab.locator(".job.done").wait_for(timeout=120_000)
    for page in (first, *tabs):
        page.close()


def test_closing_the_tab_stops_its_job(browser, server, inputs):
    page, _ = open_page(browser, server)
    page.select_option("#model", "tadsr-small-teacher")
    assert page.locator("#steps").is_enabled()
    page.fill("#steps", "15")
    page.set_input_files("#files", str(inputs / "slow.png"))
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


def test_fidelity_slider_reaches_the_job_and_equals_the_cli(browser, server, inputs, tmp_path):
    page, errors = open_page(browser, server)
    dial, auto = page.locator("#fidelity"), page.locator("#fidelity-auto")
    page.select_option("#model", "tadsr-small-teacher")  # no endpoint: no dial
    assert dial.is_disabled() and auto.is_disabled()
    page.select_option("#model", "tadsr-small")
    # the registry's default: a number on the slider, or "auto" ticked (the slider waits)
    default = registry()["tadsr-small"]["default_fidelity"]
    assert auto.is_enabled() and auto.is_checked() == (default == "auto")
    if default == "auto":
        assert dial.is_disabled() and page.locator("#fidelity-value").inner_text() == "auto"
        auto.uncheck()
    else:
        assert dial.input_value() == f"{default:g}"
    assert dial.is_enabled()
    dial.fill("0.65")
    assert page.locator("#fidelity-value").inner_text() == "0.65"
    page.set_input_files("#files", str(inputs / "face.png"))
    card = page.locator(".job.done")
    card.wait_for(timeout=120_000)
    assert card.locator(".fidelity").inner_text() == "fidelity 0.65"
    status, st = server.json("GET", f"/api/jobs/{card.get_attribute('data-id')}")
    assert status == 200 and st["fidelity"] == 0.65
    _, _, web = server.request("GET", f"/api/jobs/{st['id']}/result.png")
    cli_out = tmp_path / "cli"
    subprocess.run(
        [sys.executable, "-m", "tadsr.cli", "upscale", str(inputs / "face.png"), "-o",
         str(cli_out), "-q", "--device", "cpu", "--fidelity", "0.65"],
        check=True,
    )  # fmt: skip
    want = Image.open(cli_out / "face.png")
    assert want.info["tadsr:fidelity"] == "0.65"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(web))), np.asarray(want))
    # the API refuses what the page cannot send
    png = (inputs / "face.png").read_bytes()
    refused = {"fidelity must be from 0": {"fidelity": "1.5"},
               "no fidelity dial": {"model": "tadsr-small-teacher", "fidelity": "0.5"}}  # fmt: skip
    for words, query in refused.items():
        status, body = server.submit(png, **query)
        assert status == 400 and words in body["error"], body
    assert errors == []
    page.close()
