"""The web app of `tadsr serve` (Starlette): one page, its two assets, and a small JSON API.

Routes (nothing else is served; no part of a request names a file):
  GET  /                          the page (?token=T sets the token cookie, then redirects)
  GET  /static/app.js, ...        the page's assets, held in memory from the package
  GET  /api/config                models (description, speed), option choices and limits
  POST /api/jobs?name=&model=&steps=&tile=&color_fix=&seed=&fidelity=&outscale=&width=
                 &format=&quality=
                                  the image file is the request body; answers {id, ahead}
  GET  /api/jobs                  the finished results the server keeps, newest first
  GET  /api/jobs/{id}             state, queue position, progress, sizes, time, estimate
  POST /api/jobs/{id}/cancel      stop the job (only an explicit Cancel sends it)
  GET  /api/jobs/{id}/result      the result in its format (?download=1: as an attachment)
  GET  /api/jobs/{id}/bicubic     the input resized bicubically to the result's size (PNG)
  GET  /api/jobs/{id}/preview, preview-bicubic, thumb
                                  downscaled WebP copies (the first two: large results only)
  GET  /api/results.zip?ids=a,b   finished results in one zip
A job nobody asks about for `abandon_after_s` (tadsr serve --abandon-after) is cancelled.
Errors are JSON {"error": "one line"} with a 4xx/5xx status.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import overload

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tadsr.inference.core import COLOR_FIXES
from tadsr.inference.imageio import DEFAULT_QUALITY, OUTPUT_FORMATS
from tadsr.models.fidelity import parse_fidelity
from tadsr.utils.files import remove_stale_folders
from tadsr.web.jobs import DONE, Job, JobOptions, JobQueue, QueueFull, WorkerDied

__all__ = ["ServeConfig", "create_app"]

COOKIE = "tadsr_token"
TILE_CHOICES = (None, 0, 64, 128, 256, 512)  # None = automatic, 0 = never tile
_ASSETS = {"app.js": "text/javascript", "compare.js": "text/javascript",
           "style.css": "text/css", "favicon.svg": "image/svg+xml"}  # fmt: skip
_MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}
_ID = re.compile(r"[0-9a-f]{32}")
MAX_ZIP_RESULTS = 100  # as many as the queue keeps (JobQueue.keep_finished)


@dataclass
class ServeConfig:
    models: dict[str, str | None]  # name on the page -> NAME_OR_PATH; the first is the default
    kinds: dict[str, str]  # name -> "student" | "teacher" (as far as known before loading)
    # name -> {"description": one line, "s_per_mp": seconds per x4 output megapixel}
    about: dict[str, dict] = field(default_factory=dict)
    # name -> default F, a number or "auto" (the models that have a dial)
    fidelity: dict[str, float | str] = field(default_factory=dict)
    teacher_steps: int = 15
    device: str = "cpu"
    dtype: str = "auto"
    max_upload_bytes: int = 100 * 2**20
    max_pixels: int | None = 64_000_000
    token: str | None = None
    local_only: bool = True  # accept only Host: localhost / 127.0.0.1 / [::1] (DNS rebinding)
    abandon_after_s: float = 1800.0  # a job nobody asked about for this long is cancelled
    max_decoding: int = 2  # uploads decoded at once (each may be up to max_pixels)
    loaded: dict = field(default_factory=dict)  # name -> pipeline loaded before the start


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def display_name(raw: str | None) -> str:
    """An upload's name for display and download only: the last path part, safe characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^\w.\- ]+", "_", name).strip(" .")[:120]
    return name or "image"


class _Routes:
    """The handlers of one app: the page, its assets and the job API, sharing `cfg` and the
    running queue (`state`, filled by `lifespan`)."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        static = resources.files("tadsr.web").joinpath("static")  # one name a call before 3.11
        self.assets = {
            name: (static.joinpath(name).read_bytes(), ctype) for name, ctype in _ASSETS.items()
        }
        self.page = static.joinpath("index.html").read_bytes()
        self.state: dict = {}
        self.default_model = next(iter(self.cfg.models))

    @contextlib.asynccontextmanager
    async def lifespan(self, _app):
        from tadsr.utils.device import pick_device, pick_dtype

        # the folder is named by this process, so that a later server can tell it is stale
        remove_stale_folders(tempfile.gettempdir(), "tadsr-serve-")
        with tempfile.TemporaryDirectory(prefix=f"tadsr-serve-{os.getpid()}-") as workdir:
            queue = JobQueue(
                Path(workdir),
                self.cfg.models,
                device=(dev := pick_device(self.cfg.device)),
                dtype=pick_dtype(self.cfg.dtype, dev),
                max_pixels=self.cfg.max_pixels,
                heartbeat_s=self.cfg.abandon_after_s,
                preload=self.default_model,
                pipes=self.cfg.loaded,
                s_per_mp={n: a["s_per_mp"] for n, a in self.cfg.about.items()
                          if a.get("s_per_mp")},  # fmt: skip
                model_steps={n: a["steps"] for n, a in self.cfg.about.items() if a.get("steps")},
            )
            self.state.update(queue=queue, workdir=Path(workdir))
            self.state["decoding"] = anyio.Semaphore(self.cfg.max_decoding)
            queue.start()
            try:
                yield
            finally:
                await anyio.to_thread.run_sync(queue.stop)

    def authorized(self, request: Request) -> bool:
        if self.cfg.token is None:
            return True
        given = request.headers.get("x-tadsr-token") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(given.encode(), self.cfg.token.encode())

    async def index(self, request: Request) -> Response:
        query_token = request.query_params.get("token")
        if self.cfg.token is not None and query_token is not None:
            if not hmac.compare_digest(query_token.encode(), self.cfg.token.encode()):
                return HTMLResponse(_NEED_TOKEN.format("That token is not this server's."), 401)
            resp = RedirectResponse("/", status_code=303)
            resp.set_cookie(COOKIE, self.cfg.token, httponly=True, samesite="strict")
            return resp
        if not self.authorized(request):
            return HTMLResponse(_NEED_TOKEN.format("This server needs its token."), 401)
        return Response(self.page, media_type="text/html; charset=utf-8")

    async def static(self, request: Request) -> Response:
        asset = self.assets.get(request.path_params["name"])
        if asset is None:
            return _error(404, "not found")
        return Response(asset[0], media_type=asset[1])

    async def config(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "models": [
                    {
                        "name": n,
                        "kind": self.cfg.kinds.get(n, "student"),
                        "fidelity": self.cfg.fidelity.get(n),
                        "description": self.cfg.about.get(n, {}).get("description"),
                        "s_per_mp": self.state["queue"].s_per_mp.get(n),
                    }
                    for n in self.cfg.models
                ],
                "formats": list(OUTPUT_FORMATS),
                "quality": DEFAULT_QUALITY,
                "max_outscale": MAX_OUTSCALE,
                "abandon_after_s": self.cfg.abandon_after_s,
                "teacher_steps": self.cfg.teacher_steps,
                "tiles": TILE_CHOICES,
                "color_fixes": list(COLOR_FIXES),
                "max_upload_bytes": self.cfg.max_upload_bytes,
                "max_pixels": self.cfg.max_pixels,
            }
        )

    def parse_options(self, q) -> JobOptions:
        model = q.get("model") or self.default_model
        if model not in self.cfg.models:
            offered = ", ".join(self.cfg.models)
            raise ValueError(f"unknown model {model!r} (this server offers {offered})")
        steps = _int(q, "steps", None)
        tile = _int(q, "tile", None)
        if tile not in TILE_CHOICES:
            raise ValueError(f"tile must be one of auto, {', '.join(map(str, TILE_CHOICES[1:]))}")
        color_fix = q.get("color_fix") or "none"
        if color_fix not in COLOR_FIXES:
            raise ValueError(f"colour fix must be none, wavelet or adain, not {color_fix!r}")
        if steps is not None and not 1 <= steps <= 1000:
            raise ValueError(f"steps must be a positive number, got {steps}")
        fidelity = parse_fidelity(q.get("fidelity") or None)
        if fidelity is not None and model not in self.cfg.fidelity:
            if fidelity != 0:
                raise ValueError(f"model {model} has no fidelity dial (no faithful endpoint)")
            fidelity = None  # the dial's F = 0 end is the model itself, as in the CLI and API
        return JobOptions(model, steps, tile, color_fix, _int(q, "seed", 0), fidelity,
                          *_output_options(q))  # fmt: skip

    async def create_job(self, request: Request) -> Response:
        if request.headers.get("x-tadsr") != "1":  # a cross-site form cannot set this header
            return _error(403, "missing X-Tadsr header")
        name = display_name(request.query_params.get("name"))
        try:
            options = self.parse_options(request.query_params)
        except ValueError as exc:
            return _error(400, f"{name}: {exc}")
        limit = self.cfg.max_upload_bytes
        too_big = (
            f"{name}: the file is larger than the upload limit of {_mb(limit)} "
            "(tadsr serve --max-upload-mb)"
        )
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return _error(413, too_big)
        fd, tmp = tempfile.mkstemp(suffix=".upload", dir=self.state["workdir"])
        try:
            size = 0
            with os.fdopen(fd, "wb") as fh:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return _error(413, too_big)
                    fh.write(chunk)
            if size == 0:
                return _error(400, f"{name}: empty file (0 bytes)")
            async with self.state["decoding"]:
                pic = await anyio.to_thread.run_sync(_decode, tmp, name, self.cfg.max_pixels)
            if options.width is not None and options.width > 4 * pic.width:
                raise _BadImage(f"{name}: width {options.width} is more than x4 of the "
                                f"image's {pic.width} pixels")  # fmt: skip
            job = Job(name=name, options=options, source=None, note=pic.note,
                      size=(pic.width, pic.height))  # fmt: skip
            job.source = source = Path(tmp).rename(self.state["workdir"] / f"{job.id}.upload")
            ahead = self.state["queue"].submit(job)
        except _BadImage as exc:
            return _error(400, str(exc))
        except WorkerDied as exc:
            source.unlink()
            return _error(503, f"{name}: {exc}")
        except QueueFull as exc:
            source.unlink()
            return _error(503, f"{name}: {exc}; try again later")
        finally:
            Path(tmp).unlink(missing_ok=True)  # kept only under the job's name
        return JSONResponse({"id": job.id, "ahead": ahead, "width": pic.width,
                             "height": pic.height})  # fmt: skip

    def find(self, request: Request) -> Job | None:
        job_id = request.path_params["job"]
        return self.state["queue"].get(job_id) if _ID.fullmatch(job_id) else None

    async def job_status(self, request: Request) -> Response:
        job_id = request.path_params["job"]
        status = self.state["queue"].status(job_id) if _ID.fullmatch(job_id) else None
        return _error(404, "no such job") if status is None else JSONResponse(status)

    async def history(self, _request: Request) -> Response:
        return JSONResponse({"jobs": self.state["queue"].recent()})

    async def cancel(self, request: Request) -> Response:
        if request.headers.get("x-tadsr") != "1":  # as for uploads: no cross-site form posts
            return _error(403, "missing X-Tadsr header")
        job = self.find(request)
        if job is None:
            return _error(404, "no such job")
        self.state["queue"].cancel(job.id)
        return JSONResponse({"id": job.id, "state": job.state})

    async def image(self, request: Request) -> Response:
        job = self.find(request)
        if job is None or job.state != DONE:
            return _error(404, "no such result")
        which = request.path_params["which"].split(".", 1)[0]  # result.png: the older form
        path = {"result": job.result, "bicubic": job.bicubic, **job.previews}.get(which)
        if path is None:
            return _error(404, "not found")
        media = _MEDIA.get(path.suffix, "image/webp")
        if request.query_params.get("download"):
            return FileResponse(path, media_type=media, filename=_out_name(job))
        return FileResponse(path, media_type=media)

    async def results_zip(self, request: Request) -> Response:
        raw = request.query_params.get("ids", "").split(",")
        ids = list(dict.fromkeys(i for i in raw if _ID.fullmatch(i)))  # each result once
        if len(ids) > MAX_ZIP_RESULTS:
            return _error(400, f"at most {MAX_ZIP_RESULTS} results per zip, got {len(ids)}")
        jobs = [j for j in map(self.state["queue"].get, ids) if j is not None and j.state == DONE]
        if not jobs:
            return _error(404, "no finished results to download")
        entries, used = [], set()
        for job in jobs:
            name, k = _out_name(job), 2
            stem, ext = name.rsplit(".", 1)
            while name.lower() in used:
                name, k = f"{stem}_{k}.{ext}", k + 1
            used.add(name.lower())
            entries.append((job.result, name))
        return StreamingResponse(
            _zip_stream(entries),
            media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="tadsr-results.zip"'},
        )


def create_app(cfg: ServeConfig) -> _Guard:
    r = _Routes(cfg)
    routes = [
        Route("/", r.index),
        Route("/static/{name}", r.static),
        Route("/api/config", r.config),
        Route("/api/jobs", r.create_job, methods=["POST"]),
        Route("/api/jobs", r.history),
        Route("/api/jobs/{job}", r.job_status),
        Route("/api/jobs/{job}/cancel", r.cancel, methods=["POST"]),
        Route("/api/jobs/{job}/{which:str}", r.image),
        Route("/api/results.zip", r.results_zip),
    ]
    app = Starlette(routes=routes, lifespan=r.lifespan)
    return _Guard(app, cfg, r.authorized)


class _Guard:
    """ASGI wrapper: the Host check (when local only), the token for everything but the
    page itself (which says how to give it), and no caching of results."""

    def __init__(self, app, cfg: ServeConfig, authorized) -> None:
        self.app, self.cfg, self.authorized = app, cfg, authorized

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            if self.cfg.local_only and not _local_host(request.headers.get("host", "")):
                await _error(421, "this server answers only to localhost")(scope, receive, send)
                return
            if scope["path"] != "/" and not self.authorized(request):
                await _error(401, "a valid token is required")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _local_host(host: str) -> bool:
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in ("localhost", "127.0.0.1", "::1")


class _BadImage(Exception):
    pass


def _decode(path: str, name: str, max_pixels: int | None):
    """read_image on the uploaded bytes; its messages name the upload, not the temp file."""
    from tadsr.inference.imageio import ImageReadError, read_image

    try:
        return read_image(path, max_pixels=max_pixels)
    except ImageReadError as exc:
        raise _BadImage(str(exc).replace(path, name).replace("--max-pixels", "tadsr serve "
                        "--max-pixels")) from None  # fmt: skip


@overload
def _int(q, key: str, default: int) -> int: ...
@overload
def _int(q, key: str, default: None) -> int | None: ...
def _int(q, key: str, default: int | None) -> int | None:
    raw = q.get(key)
    if raw in (None, "", "auto"):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{key} must be a whole number, got {raw!r}") from None


def _mb(n: int) -> str:
    return f"{n / 2**20:g} MB"


class _Chunks(io.RawIOBase):
    """A write-only, unseekable file that keeps what is written until taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _zip_stream(entries: list[tuple[Path, str]], chunk: int = 1 << 20):
    """The zip of (file, name in the zip), made while it is sent, about `chunk` bytes at a
    time (stored: PNGs are compressed already); a result removed meanwhile is left out."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zf:
        for path, name in entries:
            try:
                src = open(path, "rb")
            except OSError:
                continue
            with src, zf.open(name, "w", force_zip64=True) as dst:
                while block := src.read(chunk):
                    dst.write(block)
                    yield sink.take()
            if sink.parts:
                yield sink.take()
    if sink.parts:
        yield sink.take()


def _out_name(job: Job) -> str:
    """The download's name, as tadsr upscale tags a renamed output: stem_x4.png, _x2.webp..."""
    from tadsr.inference.core import output_tag

    stem = job.name.rsplit(".", 1)[0] if "." in job.name else job.name
    o = job.options
    return f"{stem}_{output_tag(o.outscale, o.width)}{OUTPUT_FORMATS[o.format]}"


MAX_OUTSCALE = 4.0  # the page's sizes go up to the network's own x4


def _output_options(q) -> tuple[float | None, int | None, str, int | None]:
    """(outscale, width, format, quality) of a job's query; ValueError naming the bad one."""
    raw = q.get("outscale") or None
    try:
        outscale = None if raw is None else float(raw)
    except ValueError:
        raise ValueError(f"outscale must be a number, got {raw!r}") from None
    if outscale is not None and not 0 < outscale <= MAX_OUTSCALE:  # (nan fails too)
        raise ValueError(f"outscale must be above 0 and at most {MAX_OUTSCALE:g}, got {raw}")
    width = _int(q, "width", None)
    if width is not None and not 1 <= width <= 65536:
        raise ValueError(f"width must be 1 to 65536 pixels, got {width}")
    if width is not None and outscale is not None:
        raise ValueError("give outscale or width, not both")
    fmt = q.get("format") or "png"
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format must be {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
    quality = _int(q, "quality", None)
    if quality is not None and (fmt == "png" or not 1 <= quality <= 100):
        raise ValueError(f"quality must be 1 to 100, for jpg or webp only, got {quality}")
    return outscale, width, fmt, quality


_NEED_TOKEN = """<!doctype html><meta charset="utf-8"><title>tadsr</title>
<p>{} Open the address that <code>tadsr serve</code> printed (it ends with
<code>?token=...</code>).</p>"""
