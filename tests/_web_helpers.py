"""A real `tadsr serve` in a subprocess, and small HTTP helpers (not tests themselves)."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


class Server:
    """`python -m tadsr.cli serve --port 0 ARGS` with TMPDIR = tmpdir; url from its first line."""

    def __init__(self, tmpdir: Path, *args: str) -> None:
        self.tmpdir = Path(tmpdir)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(self.tmpdir), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tadsr.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # the stop is a Ctrl-C (SIGINT), which a background shell job would ignore
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            env=env,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*)", line)
        if m is None:
            self.proc.kill()
            raise RuntimeError(f"tadsr serve did not start: {line!r} {self.proc.stderr.read()}")
        self.port, self.url = int(m.group(1)), f"http://127.0.0.1:{m.group(1)}{m.group(2)}"
        deadline = time.monotonic() + 60
        while True:  # the socket is bound before uvicorn starts serving: wait for an answer
            try:
                self.request("GET", "/api/config", headers={"X-Tadsr-Token": "-"})
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None,
                chunked: bool = False):  # fmt: skip
        """(status, headers dict, body bytes) of one request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            if chunked:
                conn.putrequest(method, path, skip_accept_encoding=True)
                for k, v in (headers or {}).items():
                    conn.putheader(k, v)
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                try:
                    for i in range(0, len(body), 65536):
                        part = body[i : i + 65536]
                        conn.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    conn.send(b"0\r\n\r\n")
                except OSError:  # the server may answer and close before the whole body
                    pass
            else:
                conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: bytes | None = None, headers=None):
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def submit(self, data: bytes, name: str = "photo.png", **options):
        query = "&".join(f"{k}={v}" for k, v in {"name": name, **options}.items())
        return self.json("POST", f"/api/jobs?{query}", data, {"X-Tadsr": "1"})

    def wait(self, job_id: str, until=("done", "error", "cancelled"), timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, st = self.json("GET", f"/api/jobs/{job_id}")
            assert status == 200, st
            if st["state"] in until:
                return st
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} still {st}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


def module_server(tmp_path_factory):
    """A test module's server (as a pytest fixture): upload limit 1 MB."""
    srv = Server(tmp_path_factory.mktemp("serve-tmp"), "--max-upload-mb", "1")
    try:
        yield srv
    finally:
        srv.stop()


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))
