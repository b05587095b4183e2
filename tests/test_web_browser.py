"""The `tadsr serve` page in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright; CI installs both). Nothing here skips: without the browser these tests fail.

A screenshot of the page is kept in outputs/test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
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


def open_page(browser, server, fresh: bool = True):
    """A tab on the page; `fresh`: without the jobs and options an earlier test left in the
    shared profile's localStorage."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: r.status >= 400 and "/api/" not in r.url
            and errors.append(f"{r.status} {r.url}"))  # fmt: skip
    page.goto(server.url)
    if fresh:
        page.evaluate("localStorage.clear()")
        page.goto(server.url)
    page.wait_for_selector("#model option", state="attached")
    return page, errors


def image_at(page, card, fx: float, fy: float = 0.5) -> str:
    """The class of the image shown at (fx, fy) of the compare view (fractions of its box)."""
    return card.locator(".compare").evaluate(
        """(v, [fx, fy]) => { const b = v.getBoundingClientRect();
             const el = document.elementFromPoint(b.left + fx * b.width, b.top + fy * b.height);
             return el.className; }""",
        [fx, fy],
    )


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
    # the compare view: labels and divider right at every zoom (case 3)
    view = card.locator(".compare")
    box = view.bounding_box()
    assert (box["width"], box["height"]) == (192 + 2, 192 + 2)  # fitted, with its border
    for _ in range(3):
        card.locator(".zin").click()
    card.locator(".split").fill("80")
    scale = float(view.get_attribute("data-scale"))
    assert scale > 3
    divider = card.locator(".divider").bounding_box()
    assert abs(divider["x"] + 1 - (box["x"] + 1 + 0.8 * 192)) < 1.5
    assert card.locator(".tag.left").is_visible() and card.locator(".tag.right").is_visible()
    assert (image_at(page, card, 0.5), image_at(page, card, 0.9)) == ("before", "after")
    card.locator(".split").fill("0")
    assert not card.locator(".tag.left").is_visible() and image_at(page, card, 0.3) == "after"
    card.locator(".split").fill("50")
    # drag on the image away from the divider pans; drag at the divider moves it
    before = card.locator("img.before").bounding_box()
    cx, cy = box["x"] + 40, box["y"] + 100
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 30, cy + 20, steps=3)
    page.mouse.up()
    moved = card.locator("img.before").bounding_box()
    assert (round(moved["x"] - before["x"]), round(moved["y"] - before["y"])) == (30, 20)
    page.mouse.move(box["x"] + 1 + 96, cy)
    page.mouse.down()
    page.mouse.move(box["x"] + 1 + 48, cy, steps=3)
    page.mouse.up()
    assert abs(float(card.locator(".split").input_value()) - 25) < 1
    # the wheel zooms; 1:1 is one image pixel per screen pixel
    page.mouse.move(box["x"] + 100, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"+document.querySelector('.compare').dataset.scale > {scale * 1.2}")
    card.locator(".one").click()
    dpr = page.evaluate("devicePixelRatio")
    assert card.locator("img.after").bounding_box()["width"] == pytest.approx(192 / dpr)
    assert card.locator(".zoomval").inner_text() == "100 %"
    # what the job was: sizes, time, model, format (case 5's figures)
    facts = card.locator(".facts").inner_text()
    assert facts.startswith("48 x 48 -> 192 x 192 px, ") and facts.endswith(", tadsr-small, PNG")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)

    with page.expect_download() as dl:
        card.locator("a.download").click()
    got = tmp_path / "download.png"
    dl.value.save_as(got)
    assert dl.value.suggested_filename == "face_x4.png"
    # the server's history lists it with a small thumbnail
    item = page.locator("#history li", has=page.locator(".hname", has_text="face.png")).first
    item.wait_for()
    assert item.locator("img").evaluate("i => i.src").endswith("/thumb")
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
    states = [t.locator(".job .state").inner_text().split("; ") for t in tabs]
    assert sorted(s[0] for s in states) == [
        "waiting in the queue: 1 job ahead", "waiting in the queue: 2 jobs ahead"
    ]  # fmt: skip
    assert all(re.fullmatch(r"it will take about [\d.]+ s", s[1]) for s in states), states
    first.click(".job .cancel")
    first.wait_for_function("document.querySelector('.job .state').textContent === 'cancelled'")
    for tab in tabs:
        tab.locator(".job.done").wait_for(timeout=120_000)
    for page in (first, *tabs):
        page.close()


def test_a_failed_poll_and_a_reload_keep_the_job(browser, server, inputs):
    """Cases 1 and 2: one status request fails (a network blip) and the page tries again; a
    reload mid-job neither cancels nor forgets it: the page reconnects, with its options."""
    page, errors = open_page(browser, server)
    page.select_option("#model", "tadsr-small-teacher")
    aborted: list[str] = []

    def flaky(route):
        if not aborted:
            aborted.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r".*/api/jobs/[0-9a-f]{32}$"), flaky)
    # every text the card's state shows, recorded as it changes: the retry notice lasts about
    # a second, which a poll of the page can miss on a loaded machine
    page.evaluate("""() => { window.__states = [];
        new MutationObserver(() => { const s = document.querySelector('.job .state');
            const t = s && s.textContent;
            if (t && window.__states.at(-1) !== t) window.__states.push(t); })
        .observe(document.body, { subtree: true, childList: true, characterData: true }); }""")
    page.set_input_files("#files", str(inputs / "slow.png"))
    card = page.locator(".job").first
    page.wait_for_function("window.__states.some(s => s.startsWith('cannot reach the server'))")
    page.wait_for_function("window.__states.some(s => s.startsWith('upscaling: '))",
                           timeout=120_000)  # fmt: skip
    assert len(aborted) == 1 and card.locator(".error").is_hidden()
    # the steps of the teacher, and a time estimate rather than a counter alone (case 5)
    state = page.evaluate("window.__states.find(s => s.startsWith('upscaling: '))")
    assert re.fullmatch(r"upscaling: \d+ of 15 steps, (about [\d.]+ s left|nearly done)", state)
    job_id = card.get_attribute("data-id")
    page.wait_for_function("document.querySelector('.job progress').value >= 1", timeout=120_000)
    page.reload()
    # kept: the menu is filled from the server after the load event, so wait for it
    page.wait_for_function("document.querySelector('#model').value === 'tadsr-small-teacher'")
    again = page.locator(f".job[data-id='{job_id}']")
    again.wait_for()
    assert server.json("GET", f"/api/jobs/{job_id}")[1]["state"] in ("running", "done")
    page.locator(f".job.done[data-id='{job_id}']").wait_for(timeout=120_000)
    assert again.locator(".facts").inner_text().endswith(", tadsr-small-teacher, PNG")
    assert server.json("GET", f"/api/jobs/{job_id}")[1]["state"] == "done"
    assert errors == []
    page.close()


def _luminance(css: str) -> float:
    """WCAG relative luminance of a computed CSS colour 'rgb(r, g, b)'."""
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_drop_anywhere_paste_and_output_options_equal_the_cli(browser, server, inputs, tmp_path):
    """Case 4: a drop outside the box is the page's, not the browser's; Ctrl+V pastes; the
    page's x2 WebP at quality 90 is the CLI's, pixel for pixel. Accessibility basics too."""
    page, errors = open_page(browser, server)
    assert page.locator("#drop").evaluate("e => e.tagName") == "BUTTON"
    assert page.locator("#dropcover").is_hidden()  # shown only while files are dragged
    assert page.locator("#announce").get_attribute("aria-live") == "polite"
    about = registry()["tadsr-small"]["description"] + ". About "
    assert page.locator("#model-help").inner_text().startswith(about)
    assert page.locator("#model-help").inner_text().endswith(" per megapixel of input.")
    for sel in ("#drop", "#zip", "#model", "#seed"):
        box = page.locator(sel).bounding_box()
        assert box["height"] >= 24 and box["width"] >= 24, sel
    # dark mode follows the system: light text on a dark page, and back
    colours = "(s => [s.color, s.backgroundColor])(getComputedStyle(document.body))"
    page.emulate_media(color_scheme="dark")
    fg, bg = (_luminance(c) for c in page.evaluate(colours))
    assert fg > 0.6 and bg < 0.05
    page.emulate_media(color_scheme="light")
    fg, bg = (_luminance(c) for c in page.evaluate(colours))
    assert fg < 0.1 and bg > 0.8
    page.select_option("#size", "2")
    page.select_option("#format", "webp")
    page.fill("#quality", "90")
    data = list((inputs / "face.png").read_bytes())
    # dropped on the page's title, far from the box: the browser would open the file
    # in place of the page unless the page takes the drop (defaultPrevented)
    assert page.evaluate(
        """(bytes) => { const dt = new DataTransfer();
             dt.items.add(new File([new Uint8Array(bytes)], "face.png", { type: "image/png" }));
             const ev = new DragEvent("drop",
               { dataTransfer: dt, bubbles: true, cancelable: true });
             document.querySelector("body > header").dispatchEvent(ev);
             return ev.defaultPrevented; }""",
        data,
    )
    assert page.evaluate(
        """(bytes) => { const dt = new DataTransfer();
             dt.items.add(new File([new Uint8Array(bytes)], "image.png", { type: "image/png" }));
             const ev = new ClipboardEvent("paste",
               { clipboardData: dt, bubbles: true, cancelable: true });
             document.body.dispatchEvent(ev); return ev.defaultPrevented; }""",
        data,
    )
    page.wait_for_function("document.querySelectorAll('.job.done').length === 2", timeout=120_000)
    names = sorted(page.locator(".job .name").all_inner_texts())
    assert names[0] == "face.png" and names[1].startswith("pasted-") and names[1].endswith(".png")
    card = page.locator(".job.done", has=page.locator(".name", has_text="face.png"))
    assert card.locator("progress").get_attribute("aria-label") == "progress of face.png"
    assert card.locator("a.download").inner_text() == "Download WEBP"
    with page.expect_download() as dl:
        card.locator("a.download").click()
    assert dl.value.suggested_filename == "face_x2.webp"
    got = tmp_path / "web.webp"
    dl.value.save_as(got)
    subprocess.run(
        [sys.executable, "-m", "tadsr.cli", "upscale", str(inputs / "face.png"), "-o",
         str(tmp_path / "cli"), "-q", "--device", "cpu", "--outscale", "2", "--format", "webp",
         "--quality", "90"],
        check=True,
    )  # fmt: skip
    web, cli = Image.open(got), Image.open(tmp_path / "cli" / "face.webp")
    assert (web.format, web.size) == ("WEBP", (96, 96))
    np.testing.assert_array_equal(np.asarray(web), np.asarray(cli))
    assert errors == []
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-phone.png"), full_page=True)
    page.close()


def test_cancel_during_the_upload_stops_it(browser, server, inputs):
    """Case 6: the upload is held (a route that never answers); Cancel aborts it."""
    page, errors = open_page(browser, server)
    held = []
    page.route(re.compile(r".*/api/jobs\?.*"), lambda route: held.append(route))
    page.set_input_files("#files", str(inputs / "face.png"))
    card = page.locator(".job").first
    card.locator(".state", has_text="uploading").wait_for()
    page.wait_for_function("() => true")  # let the request reach the route
    card.locator(".cancel").click()
    card.locator(".state", has_text="cancelled").wait_for(timeout=10_000)
    assert len(held) == 1 and card.get_attribute("data-id") is None
    page.unroute(re.compile(r".*/api/jobs\?.*"))
    assert errors == []
    page.close()


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
