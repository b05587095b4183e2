"""`tadsr serve` over HTTP: bad inputs, concurrency, cancelling, token, paths, temp files.

Every test talks to a real server (uvicorn in a subprocess, the bundled models) on a free
localhost port; the browser tests are in test_web_browser.py.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
from PIL import Image
from tests._web_helpers import Server, decode_png, module_server, png_bytes

from tadsr.web.jobs import Job, JobOptions, JobQueue, QueueFull

server = pytest.fixture(scope="module")(module_server)


@pytest.fixture(scope="module")
def crops(photo):
    """Small real photo crops (48 x 48), PNG bytes."""
    return [png_bytes(np.ascontiguousarray(photo[40 * i : 40 * i + 48, 200:248])) for i in range(6)]


def assert_alive(server):
    status, cfg = server.json("GET", "/api/config")
    assert status == 200 and cfg["max_upload_bytes"] == 2**20


def test_a_photo_comes_back_4x_with_its_bicubic_comparison(server, crops):
    status, job = server.submit(crops[0], name="crop.png")
    assert status == 200 and job["ahead"] in (0, 1) and (job["width"], job["height"]) == (48, 48)
    st = server.wait(job["id"])
    assert st["state"] == "done" and st["done"] == st["total"] >= 1
    status, headers, data = server.request("GET", f"/api/jobs/{job['id']}/result.png?download=1")
    assert status == 200 and "crop_x4.png" in headers["content-disposition"]
    assert decode_png(data).shape == (192, 192, 3)
    status, _, bic = server.request("GET", f"/api/jobs/{job['id']}/bicubic.png")
    assert status == 200 and decode_png(bic).shape == (192, 192, 3)
    assert not np.array_equal(decode_png(bic), decode_png(data))


@pytest.mark.parametrize(
    "case,expect",
    [
        ("not an image", "notes.txt: not an image, or an unsupported format"),
        ("truncated", "notes.txt: corrupt or truncated image"),
        ("bad checksum", "notes.txt: corrupt or truncated image"),
        ("bomb", "notes.txt: too large: 10000x10000 = 100,000,000 pixels exceeds the limit of "
                 "64,000,000 (raise it with tadsr serve --max-pixels)"),
        ("empty", "notes.txt: empty file (0 bytes)"),
    ],
)  # fmt: skip
def test_a_bad_file_gets_one_line_and_the_server_goes_on(server, crops, case, expect):
    good = crops[1]
    if case == "not an image":
        data = b"just some text, not pixels\n" * 40
    elif case == "truncated":
        data = good[: len(good) // 2]
    elif case == "bad checksum":
        data = bytearray(good)
        data[good.index(b"IDAT") + 20] ^= 0xFF  # the chunk's CRC no longer matches
        data = bytes(data)
    elif case == "bomb":  # 100 MP of one-bit zeros: a 12 kB file
        buf = io.BytesIO()
        Image.new("1", (10000, 10000)).save(buf, format="PNG")
        data = buf.getvalue()
        assert len(data) < 2**20
    else:
        data = b""
    status, body = server.submit(data, name="notes.txt")
    assert status == 400
    assert body["error"].startswith(expect) and "\n" not in body["error"]
    assert "/tmp" not in body["error"] and ".upload" not in body["error"]
    assert_alive(server)


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_over_the_limit_is_refused_while_streaming(server, chunked):
    data = b"\x89PNG\r\n\x1a\n" + bytes(2 * 2**20)
    status, _, body = server.request(
        "POST", "/api/jobs?name=big.png", data, {"X-Tadsr": "1"}, chunked=chunked
    )
    assert status == 413
    assert b"big.png: the file is larger than the upload limit of 1 MB" in body
    assert_alive(server)


def test_uploads_from_several_tabs_at_once_all_run(server, crops):
    answers: list = [None] * len(crops)

    def post(i):
        answers[i] = server.submit(crops[i], name=f"tab{i}.png")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(crops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(status == 200 for status, _ in answers), answers
    ids = [job["id"] for _, job in answers]
    assert len(set(ids)) == len(ids)
    assert max(job["ahead"] for _, job in answers) >= 1  # they queued behind each other
    results = []
    for job_id in ids:
        assert server.wait(job_id)["state"] == "done"
        results.append(decode_png(server.request("GET", f"/api/jobs/{job_id}/result.png")[2]))
    assert all(r.shape == (192, 192, 3) for r in results)
    status, headers, data = server.request("GET", f"/api/results.zip?ids={','.join(ids)}")
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == sorted(f"tab{i}_x4.png" for i in range(len(crops)))
        np.testing.assert_array_equal(decode_png(zf.read("tab2_x4.png")), results[2])


def test_cancel_stops_a_running_teacher_job_and_the_queue_goes_on(server, crops, photo):
    big = png_bytes(np.ascontiguousarray(photo[:200, 150:350]))  # 15 steps: seconds of work
    status, slow = server.submit(big, name="slow.png", model="tadsr-small-teacher", steps=15)
    assert status == 200
    st = server.wait(slow["id"], until=("running",))
    status, quick = server.submit(crops[4], name="quick.png")
    assert status == 200 and quick["ahead"] == 1  # the running teacher job is ahead
    deadline = time.monotonic() + 60
    while st["done"] < 1 and time.monotonic() < deadline:
        st = server.wait(slow["id"], until=("running",))
    # an estimate from the model's seconds per megapixel, for the running and the queued job
    assert st["estimate_s"] > 0 and st["elapsed_s"] >= 0 and (st["width"], st["height"]) == (
        200, 200)  # fmt: skip
    queued = server.json("GET", f"/api/jobs/{quick['id']}")[1]
    assert queued["state"] == "queued" and queued["estimate_s"] > 0 and "elapsed_s" not in queued
    assert server.json("POST", f"/api/jobs/{slow['id']}/cancel", headers={"X-Tadsr": "1"})[0] == 200
    st = server.wait(slow["id"])
    assert st["state"] == "cancelled" and st["done"] < st["total"] == 15
    assert server.wait(quick["id"])["state"] == "done"
    assert server.request("GET", f"/api/jobs/{slow['id']}/result.png")[0] == 404


def test_bad_options_are_refused_with_one_line(server, crops):
    for options, expect in [
        ({"model": "/etc/passwd"}, "x.png: unknown model '/etc/passwd'"),
        ({"tile": "7"}, "x.png: tile must be one of auto, 0, 64"),
        ({"seed": "abc"}, "x.png: seed must be a whole number"),
        ({"color_fix": "sepia"}, "x.png: colour fix must be none, wavelet or adain"),
    ]:
        status, body = server.submit(crops[0], name="x.png", **options)
        assert status == 400 and body["error"].startswith(expect), body
    status, job = server.submit(crops[0], name="x.png", model="tadsr-small-teacher", steps=99)
    st = server.wait(job["id"])
    assert st["state"] == "error" and "choose 1 to 15" in st["message"]


def test_fidelity_0_runs_a_model_without_a_dial_as_it_is(server, crops):
    """As `tadsr upscale --fidelity 0`: the dial's realism end is the model itself, so a model
    with no faithful endpoint runs unchanged; any other F is still refused."""
    results = []
    for extra in ({}, {"fidelity": "0"}):
        status, job = server.submit(crops[1], name="x.png", model="tadsr-small-teacher",
                                    steps=1, **extra)  # fmt: skip
        assert status == 200, job
        assert server.wait(job["id"])["state"] == "done"
        results.append(server.request("GET", f"/api/jobs/{job['id']}/result.png")[2])
    np.testing.assert_array_equal(decode_png(results[0]), decode_png(results[1]))
    status, body = server.submit(crops[1], name="x.png", model="tadsr-small-teacher",
                                 fidelity="0.25")  # fmt: skip
    assert status == 400 and "has no fidelity dial" in body["error"], body


def test_only_the_apps_routes_and_no_request_path_reaches_files(server, crops):
    for path in [
        "/etc/passwd",
        "/static/../../../../etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/index.html/../app.js/../../../etc/passwd",
        "/api/jobs/../../../../etc/passwd",
        "/api/jobs/..%2f..%2fetc/result.png",
        "/api/jobs/0123456789abcdef0123456789abcdef/result.png",
        "/api/results.zip?ids=../../etc/passwd",
        "/src/tadsr/web/app.py",
        "/static/",
    ]:
        status, _, body = server.request("GET", path)
        assert status == 404, (path, status)
        assert b"root:" not in body and b"import" not in body
    # a path in the upload's name is only a display name
    status, job = server.submit(crops[0], name="..%2F..%2F..%2Fetc%2Fpasswd")
    assert status == 200
    assert server.json("GET", f"/api/jobs/{job['id']}")[1]["name"] == "passwd"
    # a cross-site form cannot create jobs (no custom header), nor a foreign Host name
    status, _, _ = server.request("POST", "/api/jobs?name=a.png", crops[0])
    assert status == 403
    status, _, _ = server.request("GET", "/api/config", headers={"Host": "evil.example:80"})
    assert status == 421
    server.wait(job["id"])
    for name in ("foo", "..", "%2e%2e%2fresult", job["id"]):
        assert server.request("GET", f"/api/jobs/{job['id']}/{name}.png")[0] == 404
    assert server.request("GET", f"/api/jobs/{job['id']}/result.png")[0] == 200


def test_uploads_stay_in_one_temporary_folder_removed_at_exit(tmp_path, crops):
    srv = Server(tmp_path)
    try:
        status, job = srv.submit(crops[0], name="a.png")
        assert status == 200 and srv.wait(job["id"])["state"] == "done"
        folders = [p.name for p in tmp_path.iterdir()]
        assert len(folders) == 1 and folders[0].startswith("tadsr-serve-"), folders
        inside = sorted(p.name for p in (tmp_path / folders[0]).iterdir())
        assert inside == sorted([f"{job['id']}.png", f"{job['id']}-bicubic.png",
                                 f"{job['id']}-thumb.webp"])  # upload gone  # fmt: skip
    finally:
        assert srv.stop() == 130  # stopped by Ctrl-C, as every command
    assert list(tmp_path.iterdir()) == []


def test_token_is_required_everywhere(tmp_path, crops):
    srv = Server(tmp_path, "--token", "s3cret")
    try:
        assert srv.url.endswith("/?token=s3cret")
        assert srv.request("GET", "/api/config")[0] == 401
        assert srv.request("GET", "/static/app.js")[0] == 401
        status, _, page = srv.request("GET", "/")
        assert status == 401 and b"needs its token" in page
        assert srv.request("GET", "/?token=wrong")[0] == 401
        status, headers, _ = srv.request("GET", "/?token=s3cret")
        assert status == 303 and "tadsr_token=s3cret" in headers["set-cookie"]
        assert "HttpOnly" in headers["set-cookie"]
        assert srv.request("GET", "/", headers={"Cookie": "tadsr_token=s3cret"})[0] == 200
        assert srv.request("GET", "/api/config", headers={"X-Tadsr-Token": "s3cret"})[0] == 200
        status, _ = srv.submit(crops[0], name="a.png")
        assert status == 401
    finally:
        srv.stop()


def test_host_other_than_localhost_warns(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tadsr.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        warning = proc.stderr.readline()
        address = proc.stdout.readline()
    finally:
        proc.kill()
        proc.communicate()
    assert warning.startswith("tadsr serve: warning: --host 0.0.0.0 makes this page reachable")
    assert "--token" in warning
    assert address.startswith("tadsr serve: http://127.0.0.1:")


@pytest.mark.parametrize(
    "code,args,expect",
    [
        ("pass", ["--model", "nope.safetensors"], "tadsr serve: error: cannot load model "
         "nope.safetensors: no such file, and not a bundled model"),
        ("sys.modules['uvicorn'] = None", [], "tadsr serve: error: the web extra is not "
         'installed (uvicorn is missing): pip install "tadsr[web]"'),
    ],
)  # fmt: skip
def test_serve_refuses_to_start_with_one_line(code, args, expect):
    script = f"import sys; {code}; from tadsr.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", script, "serve", "--port", "0", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode in (1, 2) and proc.stdout == ""
    assert proc.stderr.startswith(expect) and proc.stderr.count("\n") == 1, proc.stderr


def test_the_page_and_its_assets_load_nothing_from_elsewhere(server):
    texts = [server.request("GET", p)[2].decode() for p in
             ("/", "/static/app.js", "/static/style.css")]  # fmt: skip
    for text in texts:
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
        assert "@import" not in text and "url(" not in text


def test_a_job_whose_page_stops_asking_is_cancelled(tmp_path, photo):
    """The page polls its jobs; when it stops (tab closed, no cancel request arrived), the
    running job is stopped after heartbeat_s."""
    queue = JobQueue(tmp_path, {"teacher": "tadsr-small-teacher"}, heartbeat_s=1.0)
    queue.start()
    try:
        upload = tmp_path / "a.upload"  # 15 steps on 256 x 256: seconds of work
        upload.write_bytes(png_bytes(np.ascontiguousarray(photo[:256, :256])))
        job = Job("a.png", JobOptions("teacher", steps=15), upload)
        assert queue.submit(job) == 0
        deadline = time.monotonic() + 60
        while job.done < 2 and time.monotonic() < deadline:  # the page is open: it polls
            assert queue.status(job.id)["state"] in ("queued", "running")
            time.sleep(0.2)
        assert job.state == "running"
        last_poll = job.last_seen  # the page's last sign of life
        while not job.finished and time.monotonic() < last_poll + 60:
            time.sleep(0.1)
        assert job.state == "cancelled" and job.message == "cancelled: the page went away"
        assert job.done < job.total == 15 and job.result is None
        assert not upload.exists()
        assert time.monotonic() - last_poll >= 1.0
    finally:
        queue.stop()


def test_a_full_queue_refuses_more_jobs(tmp_path):
    queue = JobQueue(tmp_path, {"m": None}, max_waiting=2)  # not started: nothing runs
    for _ in range(2):
        queue.submit(Job("a.png", JobOptions("m"), None))
    with pytest.raises(QueueFull, match=r"the queue is full \(2 jobs waiting\)"):
        queue.submit(Job("b.png", JobOptions("m"), None))


@pytest.mark.parametrize("what", ["random.pth", "zip.pth", "student.onnx", "fifo.safetensors"])
def test_serve_with_a_model_it_cannot_run_stops_before_printing_the_address(tmp_path, what):
    import os

    import torch

    model = tmp_path / what
    if what == "random.pth":
        model.write_bytes(np.random.default_rng(0).bytes(4096))
    elif what == "zip.pth":
        torch.save({"weights": [1, 2, 3]}, model)  # a zip-pickle holding no tensors
    elif what == "student.onnx":
        model.write_bytes(b"\x08\x07" + bytes(100))
    else:
        os.mkfifo(model)
    proc = subprocess.run([sys.executable, "-m", "tadsr.cli", "serve", "--port", "0",
                           "--model", str(model)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"tadsr serve: error: cannot load model {model}: ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_default_model_that_fails_to_load_leaves_the_worker_running(tmp_path, photo):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint\n")
    queue = JobQueue(tmp_path, {"bad": str(bad), "good": "tadsr-small"}, preload="bad")
    queue.start()
    try:
        jobs = []
        for model in ("good", "bad"):
            upload = tmp_path / f"{model}.upload"
            upload.write_bytes(png_bytes(np.ascontiguousarray(photo[:32, :32])))
            jobs.append(Job("a.png", JobOptions(model), upload))
            queue.submit(jobs[-1])
        deadline = time.monotonic() + 120
        while not all(j.finished for j in jobs) and time.monotonic() < deadline:
            queue.status(jobs[0].id), queue.status(jobs[1].id)
            time.sleep(0.1)
        assert jobs[0].state == "done", jobs[0].message
        assert jobs[1].state == "error" and jobs[1].message.startswith("cannot load model bad")
    finally:
        queue.stop()


class _BrokenQueue(JobQueue):
    def _run(self, job):
        raise SystemExit("the disk is on fire")  # not an Exception: it ends the thread


def test_a_dead_worker_fails_its_jobs_with_the_reason_and_refuses_new_ones(tmp_path, capfd):
    queue = _BrokenQueue(tmp_path, {"m": None})
    jobs = [Job(f"{i}.png", JobOptions("m"), None) for i in range(3)]
    for job in jobs:
        queue.submit(job)
    queue.start()
    queue._thread.join(30)
    assert not queue._thread.is_alive()
    for job in jobs:
        assert job.state == "error", job.state
        assert job.message == (f"{job.name}: the server's worker stopped: SystemExit: "
                               "the disk is on fire")  # fmt: skip
    with pytest.raises(QueueFull, match="the server's worker stopped"):
        queue.submit(Job("late.png", JobOptions("m"), None))
    assert "tadsr serve: error: the server's worker stopped" in capfd.readouterr().err


def test_the_folders_of_killed_servers_are_removed_at_start(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"tadsr-serve-{dead.pid}-abc123"
    alive = tmp_path / f"tadsr-serve-{os.getpid()}-def456"  # a running server's (this one)
    for folder in (stale, alive):
        folder.mkdir()
        (folder / "x.upload").write_bytes(b"someone's photo")
    srv = Server(tmp_path)
    try:
        assert not stale.exists() and (alive / "x.upload").is_file()
    finally:
        assert srv.stop() == 130


def test_results_zip_takes_each_id_once_caps_them_and_streams(server, crops):
    status, job = server.submit(crops[1], name="z.png")
    assert status == 200 and server.wait(job["id"])["state"] == "done"
    status, headers, data = server.request("GET", "/api/results.zip?ids=" + ",".join(
        [job["id"]] * 300))  # fmt: skip
    assert status == 200 and "content-length" not in {k.lower() for k in headers}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["z_x4.png"] and zf.testzip() is None
        assert len(data) < 2 * zf.getinfo("z_x4.png").file_size
    many = ",".join(f"{i:032x}" for i in range(101))
    status, body = server.json("GET", f"/api/results.zip?ids={many}")
    assert status == 400 and body["error"] == "at most 100 results per zip, got 101"


def test_cancel_needs_the_x_tadsr_header_and_answers_the_state(server, crops):
    status, job = server.submit(crops[2], name="c.png")
    assert status == 200
    status, body = server.json("POST", f"/api/jobs/{job['id']}/cancel")
    assert status == 403 and body["error"] == "missing X-Tadsr header"
    status, body = server.json("POST", f"/api/jobs/{job['id']}/cancel", headers={"X-Tadsr": "1"})
    assert status == 200 and set(body) == {"id", "state"} and body["id"] == job["id"]


def test_a_token_with_special_characters_is_escaped_in_the_printed_address(tmp_path):
    token = "a b&c=d#e"
    srv = Server(tmp_path, "--token", token)
    try:
        assert srv.url.endswith("/?token=a%20b%26c%3Dd%23e")
        path = srv.url.split(str(srv.port), 1)[1]
        status, headers, _ = srv.request("GET", path)
        assert status == 303 and "tadsr_token=" in headers["set-cookie"]
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "args,words",
    [(["--max-upload-mb=0"], "--max-upload-mb: must be > 0, got '0'"),
     (["--max-upload-mb=nan"], "--max-upload-mb: must be a finite number > 0, got 'nan'"),
     (["--max-upload-mb=inf"], "--max-upload-mb: must be a finite number > 0, got 'inf'"),
     (["--max-upload-mb=-inf"], "--max-upload-mb: must be a finite number > 0, got '-inf'"),
     (["--max-pixels", "0"], "--max-pixels: must be >= 1, got '0'"),
     (["--port", "65536"], "--port: must be 0 to 65535, got '65536'")],
)  # fmt: skip
def test_serve_options_out_of_range_are_refused_by_the_parser(args, words):
    proc = subprocess.run([sys.executable, "-m", "tadsr.cli", "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("usage: tadsr serve") and [ln for ln in lines if "error" in ln] == [
        f"tadsr serve: error: argument {words}"
    ], proc.stderr


def test_output_size_format_quality_history_and_thumbnail(server, crops):
    """outscale 2, WebP at quality 90: the file, its name, its facts in the status and in the
    history, and a small thumbnail; bad output options get one line."""
    status, job = server.submit(crops[1], name="pic.png", outscale="2", format="webp",
                                quality="90")  # fmt: skip
    assert status == 200, job
    st = server.wait(job["id"])
    assert st["state"] == "done", st
    assert (st["width"], st["height"], st["out_width"], st["out_height"]) == (48, 48, 96, 96)
    assert st["format"] == "webp" and st["seconds"] > 0
    status, headers, data = server.request("GET", f"/api/jobs/{job['id']}/result?download=1")
    assert status == 200 and headers["content-type"] == "image/webp"
    assert "pic_x2.webp" in headers["content-disposition"]
    img = Image.open(io.BytesIO(data))
    assert (img.format, img.size) == ("WEBP", (96, 96))
    status, headers, thumb = server.request("GET", f"/api/jobs/{job['id']}/thumb")
    assert status == 200 and headers["content-type"] == "image/webp"
    assert max(Image.open(io.BytesIO(thumb)).size) <= 160
    # no preview for a result that fits a screen: the page shows the file itself
    assert server.request("GET", f"/api/jobs/{job['id']}/preview")[0] == 404
    status, hist = server.json("GET", "/api/jobs")
    assert status == 200 and hist["jobs"][0]["id"] == job["id"]
    assert all(j["state"] == "done" for j in hist["jobs"])
    for query, words in [({"outscale": "5"}, "outscale must be above 0 and at most 4"),
                         ({"format": "gif"}, "format must be png, jpg, webp"),
                         ({"quality": "90"}, "quality must be 1 to 100, for jpg or webp"),
                         ({"width": "500"}, "width 500 is more than x4 of the image's 48"),
                         ({"width": "90", "outscale": "2"}, "not both")]:  # fmt: skip
        status, body = server.submit(crops[1], name="pic.png", **query)
        assert status == 400 and body["error"].startswith("pic.png: ") and words in body["error"]


def test_a_jpeg_of_a_transparent_upload_says_so_on_the_job(server, photo):
    rgba = np.dstack([photo[:40, :40], np.full((40, 40), 128, np.uint8)])
    status, job = server.submit(png_bytes(rgba), name="clear.png", format="jpg")
    st = server.wait(job["id"])
    assert st["state"] == "done" and st["note"] == "JPEG has no transparency: composited on white"
    img = Image.open(io.BytesIO(server.request("GET", f"/api/jobs/{job['id']}/result")[2]))
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (160, 160))


def test_previews_of_a_large_result_are_small_webp(tmp_path):
    from tadsr.inference.imageio import Picture
    from tadsr.web.previews import write_previews

    rng = np.random.default_rng(0)
    big = Picture(rng.integers(0, 65536, (900, 2000, 3), dtype=np.uint16))
    small = Picture(rng.integers(0, 256, (900, 2000, 1), dtype=np.uint8))
    out = write_previews(tmp_path / "j", big, small)
    sizes = {k: Image.open(p).size for k, p in out.items()}
    assert sizes == {"thumb": (160, 72), "preview": (1600, 720), "preview-bicubic": (1600, 720)}


def test_abandon_after_is_checked(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tadsr.cli", "serve", "--abandon-after", "0"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "tadsr serve: error: argument --abandon-after: must be > 0, got '0'"
    )
