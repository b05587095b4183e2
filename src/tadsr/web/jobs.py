"""The job queue of `tadsr serve`: one worker thread runs the upscaling jobs one at a time.

A job holds its uploaded file (decoded once when it arrives, so that a bad file is refused
at once, and again when the job runs, so that waiting jobs hold no pixels in memory) and the
options of `tadsr upscale`. The worker loads each
model once, on first use (the default one right after the server starts), and runs the same
`Upscaler` as the command line, so the result is the one `tadsr upscale` writes. A job is
cancelled by an explicit request, or when no page has asked about it for `heartbeat_s`
seconds (tadsr serve --abandon-after; a reloaded page asks again); a running job stops at
its next network evaluation. Results (PNG, JPEG or WebP, with their bicubic comparison and
previews) are files in the server's temporary folder, named by the job's random id.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from tadsr.utils.files import one_line

__all__ = ["Job", "JobOptions", "JobQueue", "QueueFull", "WorkerDied"]

QUEUED, RUNNING, DONE, ERROR, CANCELLED = "queued", "running", "done", "error", "cancelled"


class QueueFull(Exception):
    """More jobs are waiting than the queue takes."""


class WorkerDied(QueueFull):
    """The worker thread has stopped (its reason is the message): no job can run."""


class _Cancelled(Exception):
    pass


class _StatusKeys(TypedDict):
    id: str
    name: str
    state: str
    done: int
    total: int
    message: str | None
    note: str | None
    fidelity: float | None
    model: str
    format: str
    width: int
    height: int
    out_width: int
    out_height: int
    seconds: float | None


class JobStatus(_StatusKeys, total=False):
    """What the page shows of a job (`JobQueue.status`), as JSON."""

    ahead: int  # queued: the jobs before it
    estimate_s: float  # queued or running, when the model's speed is known
    elapsed_s: float  # running


@dataclass(frozen=True)
class JobOptions:
    """The options of `tadsr upscale` that the page offers (model: a name the server lists)."""

    model: str
    steps: int | None = None
    tile: int | None = None
    color_fix: str = "none"
    seed: int = 0
    fidelity: float | str | None = None  # the dial's F or "auto" (None: the model's default)
    outscale: float | None = None  # the final scale (None: x4) ...
    width: int | None = None  # ... or the final width, as tadsr upscale --outscale / --width
    format: str = "png"  # png | jpg | webp, as tadsr upscale --format
    quality: int | None = None  # jpg / webp quality (None: the default, 95)


@dataclass
class Job:
    name: str  # the upload's display name (never used as a path)
    options: JobOptions
    source: Path | None  # the upload in the server's temporary folder; removed when it ends
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = QUEUED
    done: int = 0
    total: int = 0
    message: str | None = None
    note: str | None = None
    fidelity: float | None = None  # the F the result was made with (a model with a dial)
    result: Path | None = None
    bicubic: Path | None = None
    previews: dict[str, Path] = field(default_factory=dict)  # "preview", "thumb", ... -> file
    size: tuple[int, int] = (0, 0)  # the input's (width, height)
    out_size: tuple[int, int] = (0, 0)  # the result's
    started: float | None = None  # time.monotonic() when it began to run
    seconds: float | None = None  # how long it ran (done)
    ended_at: float | None = None  # time.time() when it finished (the history's order)
    last_seen: float = field(default_factory=time.monotonic)
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.state in (DONE, ERROR, CANCELLED)


class JobQueue:
    """Jobs in order, run by one worker thread (one device, one job at a time)."""

    def __init__(
        self,
        workdir: Path,
        models: dict[str, str | None],
        *,
        device: Any = "cpu",
        dtype: Any = None,
        max_pixels: int | None = None,
        heartbeat_s: float = 20.0,
        max_waiting: int = 32,
        keep_finished: int = 100,
        preload: str | None = None,
        pipes: dict[str, Any] | None = None,
        s_per_mp: dict[str, float] | None = None,
        model_steps: dict[str, int] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.models = models  # name shown on the page -> NAME_OR_PATH for from_pretrained
        self.device, self.dtype = device, dtype
        self.max_pixels = max_pixels
        self.heartbeat_s = heartbeat_s
        self.max_waiting = max_waiting
        self.keep_finished = keep_finished
        self._preload = preload
        # name -> seconds per megapixel of x4 output: the registry's figure at first, then
        # this server's own measure (the last job's), for the ETA of the next jobs
        # (at the model's own number of steps, `model_steps`; a teacher asked for fewer
        # takes that share of it)
        self.s_per_mp: dict[str, float] = dict(s_per_mp or {})
        self.model_steps: dict[str, int] = dict(model_steps or {})
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._finished: collections.deque[str] = collections.deque()
        self._running: Job | None = None
        self._pipes: dict[str, Any] = dict(pipes or {})  # name -> pipeline loaded already
        self.dead: str | None = None  # why the worker stopped, if it did
        self._load_errors: dict[str, str] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="tadsr-serve-worker", daemon=True)

    # -- called from the web app ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def submit(self, job: Job) -> int:
        """Queue a job; returns how many jobs are ahead of it. QueueFull when too many wait."""
        with self._cond:
            if self.dead is not None:
                raise WorkerDied(self.dead)
            waiting = [j for j in self._waiting if not self._abandoned(j)]
            if len(waiting) >= self.max_waiting:
                raise QueueFull(f"the queue is full ({self.max_waiting} jobs waiting)")
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._cond.notify_all()
            return self._ahead(job)

    def get(self, job_id: str, *, seen: bool = False) -> Job | None:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None and seen:
                job.last_seen = time.monotonic()
            return job

    def status(self, job_id: str) -> JobStatus | None:
        """What the page shows of a job (and a sign of life from its page)."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job.last_seen = time.monotonic()
            out = JobStatus(id=job.id, name=job.name, state=job.state, done=job.done,
                            total=job.total, message=job.message, note=job.note,
                            fidelity=job.fidelity, model=job.options.model,
                            format=job.options.format, width=job.size[0], height=job.size[1],
                            out_width=job.out_size[0], out_height=job.out_size[1],
                            seconds=job.seconds)  # fmt: skip
            if job.state == QUEUED:
                out["ahead"] = self._ahead(job)
            rate = self.s_per_mp.get(job.options.model)
            if job.state in (QUEUED, RUNNING) and rate is not None and job.size[0]:
                mp = job.size[0] * job.size[1] * 16e-6
                # at least 0.1 s: a small image's estimate must not round to "no estimate"
                out["estimate_s"] = max(0.1, round(rate * mp * self._step_share(job), 1))
            if job.state == RUNNING and job.started is not None:
                out["elapsed_s"] = round(time.monotonic() - job.started, 1)
            return out

    def _step_share(self, job: Job) -> float:
        full = self.model_steps.get(job.options.model, 1)
        return min(job.options.steps or full, full) / full

    def recent(self) -> list[JobStatus]:
        """The finished results the server still keeps, newest first (the page's history)."""
        with self._cond:
            done = [self._jobs[i] for i in self._finished if i in self._jobs]
            done = [j for j in done if j.state == DONE]
        done.sort(key=lambda j: j.ended_at or 0, reverse=True)
        return [s for s in map(self.status, (j.id for j in done)) if s is not None]

    def cancel(self, job_id: str) -> bool:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            job.cancel_requested = True
            if job.state == QUEUED:
                self._end(job, CANCELLED, "cancelled")
                self._waiting.remove(job)
            return True

    # -- bookkeeping (under the lock) ----------------------------------------------------
    def _ahead(self, job: Job) -> int:
        n = 1 if self._running is not None else 0
        for j in self._waiting:
            if j is job:
                return n
            if not self._abandoned(j):
                n += 1
        return n

    def _abandoned(self, job: Job) -> bool:
        return job.cancel_requested or time.monotonic() - job.last_seen > self.heartbeat_s

    def _end(self, job: Job, state: str, message: str | None = None) -> None:
        job.state, job.message, job.ended_at = state, message, time.time()
        if job.source is not None:
            job.source.unlink(missing_ok=True)
            job.source = None
        self._finished.append(job.id)
        while len(self._finished) > self.keep_finished:
            old = self._jobs.pop(self._finished.popleft(), None)
            for path in (old.result, old.bicubic, *old.previews.values()) if old else ():
                if path is not None:
                    path.unlink(missing_ok=True)

    # -- the worker --------------------------------------------------------------------
    def _work(self) -> None:
        """The worker thread: runs the jobs; if it ever stops on an error, every waiting or
        running job fails with the reason, later uploads are refused with it, and the
        server's log says so."""
        try:
            self._work_loop()
        except BaseException as exc:
            reason = f"the server's worker stopped: {type(exc).__name__}: {one_line(exc)}"
            with self._cond:
                self.dead = reason
                for job in [*self._waiting, *([self._running] if self._running else [])]:
                    if not job.finished:
                        self._end(job, ERROR, f"{job.name}: {reason}")
                self._waiting.clear()
                self._running = None
            import sys

            print(f"tadsr serve: error: {reason}", file=sys.stderr, flush=True)

    def _work_loop(self) -> None:
        if self._preload is not None:
            try:
                self._pipeline(self._preload)
            except ModelError:  # remembered: the jobs that ask for this model get it
                pass
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                if self._abandoned(job):
                    self._end(job, CANCELLED, _why_cancelled(job))
                    continue
                job.state, self._running, job.started = RUNNING, job, time.monotonic()
            try:
                state, message = self._run(job)
            except Exception as exc:  # the server goes on; the page gets one line
                state, message = ERROR, f"{job.name}: failed: {type(exc).__name__}: {one_line(exc)}"
            with self._cond:
                self._running = None
                self._end(job, state, message)

    def _pipeline(self, name: str):
        """The loaded pipeline of a model name (loaded once; a failure is remembered)."""
        from tadsr.models.fidelity import endpoint_for
        from tadsr.pipeline import SRPipeline

        if name not in self._pipes and name not in self._load_errors:
            # a model with a faithful endpoint is loaded with its dial, set per job
            dial = "auto" if endpoint_for(self.models[name]) else None
            try:
                self._pipes[name] = SRPipeline.from_pretrained(
                    self.models[name], device=self.device, dtype=self.dtype, fidelity=dial
                )
            except Exception as exc:
                self._load_errors[name] = f"cannot load model {name}: {one_line(exc)}"
        if name in self._load_errors:
            raise ModelError(self._load_errors[name])
        return self._pipes[name]

    def _run(self, job: Job) -> tuple[str, str | None]:
        from tadsr.inference.imageio import OUTPUT_FORMATS, format_loss, read_image, write_image
        from tadsr.inference.upscaler import Upscaler
        from tadsr.web.previews import bicubic_of, write_previews

        opts = job.options
        try:
            pipe = self._pipeline(opts.model)
        except ModelError as exc:
            return ERROR, str(exc)
        steps = opts.steps if pipe.kind == "teacher" else None
        try:  # the options' rules (a teacher's steps among them) are UpscaleOptions.validate's
            up = Upscaler(
                pipe,
                tile=opts.tile,
                seed=opts.seed,
                color_fix=opts.color_fix,
                steps=steps,
                max_pixels=self.max_pixels,
                fidelity=self._fidelity(opts, pipe),
                outscale=opts.outscale,
                width=opts.width,
            )
        except ValueError as exc:
            return ERROR, str(exc)

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            if self._stopping or self._abandoned(job):
                raise _Cancelled

        assert job.source is not None  # the upload goes only when the job ends
        pic = read_image(job.source, max_pixels=self.max_pixels)  # read before: it was fine
        job.size = (pic.width, pic.height)
        t0 = time.monotonic()
        try:
            out = up.upscale_picture(pic, on_progress=progress)
        except _Cancelled:
            return CANCELLED, "server stopping" if self._stopping else _why_cancelled(job)
        job.seconds = round(time.monotonic() - t0, 2)
        mp = pic.width * pic.height * 16e-6
        if mp >= 1:  # a small image's time is mostly fixed costs: it would mislead the ETA
            self.s_per_mp[opts.model] = job.seconds / mp / self._step_share(job)
        job.out_size = (out.width, out.height)
        suffix = OUTPUT_FORMATS[opts.format]
        loss = format_loss(out, suffix)
        if loss:  # as tadsr upscale's warning, on the job's card
            job.note = f"{job.note}; {loss}" if job.note else loss
        job.result = write_image(self.workdir / f"{job.id}{suffix}", out, opts.quality)
        # the page's comparison: the input resized bicubically to the result's size
        bicubic = bicubic_of(pic, out.height, out.width)
        job.bicubic = write_image(self.workdir / f"{job.id}-bicubic.png", bicubic)
        job.previews = write_previews(self.workdir / job.id, out, bicubic)
        job.fidelity = up.last_fidelity
        return DONE, None

    def _fidelity(self, opts: JobOptions, pipe) -> float | str | None:
        """The job's F; a model with a dial and no F asked runs at its default (as the
        command line does: the registry's default_fidelity, else 0, the model itself)."""
        if pipe.dial is None or opts.fidelity is not None:
            return opts.fidelity
        from tadsr.models.fidelity import default_fidelity

        return default_fidelity(self.models[opts.model]) or 0.0


class ModelError(Exception):
    pass


def _why_cancelled(job: Job) -> str:
    return "cancelled" if job.cancel_requested else "cancelled: the page went away"
