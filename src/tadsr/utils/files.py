"""Files in and out, one copy each: the atomic writer, the image lister, the one-line error.

Every output of the package (images, weights, checkpoints, JSON, caches) goes through
`atomic_write`: a temporary file beside the target, then `os.replace`, so a killed process
never leaves a half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

# every format Pillow (or tifffile) reads for us; upscale, eval and the corpus builder share it
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a regular file, in words, or None when it can.

    Only `stat` is used: a FIFO or a device is never opened (opening a FIFO blocks until a
    writer comes; reading /dev/zero never ends)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else "no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        return f"cannot open: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    return "is not a regular file"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_folders(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove this user's folders `PARENT/PREFIX<pid>-*` whose process is gone (a server
    killed without its clean-up); returns those removed."""
    import shutil

    removed = []
    for folder in Path(parent).glob(f"{prefix}*"):
        pid = folder.name[len(prefix) :].split("-", 1)[0]
        try:
            st = folder.lstat()
        except OSError:
            continue
        if not pid.isdigit() or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        if int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Delete `.NAME.<pid>.tmp` files (`temporary_name`) left in `folder` by a killed
    process (its pid is gone); those of running processes stay."""
    folder = Path(folder)
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, hex (read 1 MiB at a time)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def temporary_name(path: Path) -> Path:
    """`.NAME.<pid>.tmp` beside `path`: hidden, and named by its process, so a later run can
    tell a stale temporary (its process is gone) from one being written."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path` (whose folder must exist) to write; on success it
    replaces `path` (with `mode`, else the usual mode under the umask); on any error it is
    removed."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if mode is None:
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """The image files of a folder (and its sub-folders when `recursive`), sorted, without
    hidden files; OSError if it cannot be listed."""
    root = Path(folder)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        p
        for p in found
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
