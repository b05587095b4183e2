"""Image files in and out: PNG, JPEG, WebP, BMP, TIFF, PPM; gray, alpha, 8 and 16 bits.

A `Picture` keeps the pixels in their own integer type (uint8 or uint16; float32 in [0, 1]
only for float arrays handed to the Python API), the colour planes (1 = gray, 3 = RGB) apart
from the alpha plane. Reading applies the EXIF orientation and refuses, with one line naming
the file, anything that is not a readable image: missing, empty, not an image, corrupt,
truncated, or larger than the pixel limit (a decompression-bomb guard, an error, not a warning).

Pillow reduces 16-bit RGB(A) PNG and TIFF to 8 bits, so 16-bit PNGs are decoded and encoded
with `imagecodecs` (libpng) and 16-bit colour TIFFs with `tifffile`. Files are written
atomically (`tadsr.utils.files.atomic_write`).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tadsr.utils.files import IMAGE_SUFFIXES, atomic_write, file_problem, one_line

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUALITY",
    "IMAGE_SUFFIXES",
    "OUTPUT_FORMATS",
    "ImageReadError",
    "ImageWriteError",
    "Picture",
    "apply_orientation",
    "format_loss",
    "picture_from_array",
    "picture_from_pil",
    "picture_to_array",
    "picture_to_pil",
    "read_image",
    "write_image",
]

DEFAULT_MAX_PIXELS = 64_000_000  # 64 MP, e.g. 8000 x 8000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# zlib level of written PNGs: 1 is ~3x faster to write than Pillow's default 6 for files
# ~10% larger (OpenCV's default, so what Real-ESRGAN writes).
PNG_COMPRESS_LEVEL = 1


class ImageReadError(Exception):
    """An input file that cannot be read as an image (message: 'FILE: reason')."""


class ImageWriteError(Exception):
    """An output that cannot be written (message: 'FILE: reason')."""


@dataclass
class Picture:
    """Pixels of one image: `color` (H, W, 1 | 3) and optional `alpha` (H, W), same dtype.

    dtype uint8 or uint16 (16-bit files), or float32 in [0, 1]. `note` carries a remark
    worth telling the user (e.g. a 16-bit file read at 8 bits). `text`: PNG text entries
    written with it (e.g. the fidelity an upscale used).
    """

    color: np.ndarray
    alpha: np.ndarray | None = None
    note: str | None = None
    text: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.color.ndim != 3 or self.color.shape[2] not in (1, 3):
            raise ValueError(f"color must be (H, W, 1|3), got {self.color.shape}")
        if self.color.dtype not in (np.uint8, np.uint16, np.float32):
            raise ValueError(
                f"color dtype must be uint8, uint16 or float32, not {self.color.dtype}"
            )
        if self.alpha is not None and (
            self.alpha.shape != self.color.shape[:2] or self.alpha.dtype != self.color.dtype
        ):
            raise ValueError("alpha must be (H, W) with the dtype of color")

    @property
    def height(self) -> int:
        return int(self.color.shape[0])

    @property
    def width(self) -> int:
        return int(self.color.shape[1])

    @property
    def gray(self) -> bool:
        return self.color.shape[2] == 1

    @property
    def bits(self) -> int:
        """8, 16, or 32 for float pictures."""
        return {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(self.color.dtype, 32)

    @property
    def max_value(self) -> float:
        return {8: 255.0, 16: 65535.0}.get(self.bits, 1.0)


# --------------------------------------------------------------------------- orientation
def apply_orientation(arr: np.ndarray, orientation: int | None) -> np.ndarray:
    """Apply EXIF orientation 1..8 to an (H, W, ...) array, as ImageOps.exif_transpose does."""
    match orientation:
        case 2:
            return arr[:, ::-1]
        case 3:
            return arr[::-1, ::-1]
        case 4:
            return arr[::-1]
        case 5:
            return np.swapaxes(arr, 0, 1)
        case 6:
            return np.rot90(arr, -1)
        case 7:
            return np.swapaxes(arr[::-1, ::-1], 0, 1)
        case 8:
            return np.rot90(arr, 1)
        case _:
            return arr


# --------------------------------------------------------------------------- reading
def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Picture:
    """Read an image file into a Picture; raise ImageReadError('FILE: reason') on any problem."""
    path = Path(path)
    problem = file_problem(path)  # stat only: a FIFO or a device is never opened
    if problem == "is a folder, not a file":
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if problem:
        raise ImageReadError(f"{path}: {problem}")
    st = path.stat()
    if st.st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(33)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        if head.startswith(_PNG_SIGNATURE) and len(head) >= 29 and head[12:16] == b"IHDR":
            width, height, depth, _, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
            _check_pixels(path, width, height, max_pixels)
            if depth == 16:
                return _read_png16(path)
        return _read_with_pillow(path, max_pixels)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to decode it") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise ImageReadError(f"{path}: corrupt or truncated image ({one_line(exc)})") from None


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if width < 1 or height < 1:
        raise ImageReadError(f"{path}: corrupt image (size {width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(
            f"{path}: too large: {width}x{height} = {width * height:,} pixels exceeds the limit "
            f"of {max_pixels:,} (raise it with --max-pixels)"
        )


def _read_with_pillow(path: Path, max_pixels: int | None) -> Picture:
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own limit, checked below before decoding
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                img = Image.open(path)
            except UnidentifiedImageError:
                pic = _read_tiff_other(path, max_pixels)
                if pic is not None:
                    return pic
                raise ImageReadError(
                    f"{path}: not an image, or an unsupported format "
                    "(PNG, JPEG, WebP, BMP, TIFF are supported)"
                ) from None
            with img:
                _check_pixels(path, img.width, img.height, max_pixels)
                if img.format == "PNG":  # decoding skips chunk checksums; verify() does not
                    img.verify()
                    img = Image.open(path)
                frames = getattr(img, "n_frames", 1)
                if img.format == "TIFF" and _tiff_is_16bit_color(img):
                    pic = _read_tiff16(path)
                    if pic is not None:
                        return pic
                    note = "16-bit colour TIFF read at 8 bits (an unusual sample layout)"
                else:
                    note = None
                if frames > 1:
                    note = f"{img.format} with {frames} frames: the first frame is upscaled"
                img.load()
                pic = picture_from_pil(ImageOps.exif_transpose(img))
                pic.note = note
                return pic
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _read_tiff_other(path: Path, max_pixels: int | None) -> Picture | None:
    """A TIFF that Pillow cannot open (e.g. 32-bit float RGB), through tifffile: float data
    is taken as [0, 1] and clipped, 8/16-bit integers as they are; None when it is not a TIFF;
    ImageReadError naming what is unsupported otherwise."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            _check_pixels(path, int(page.imagewidth), int(page.imagelength), max_pixels)
            arr, axes = page.asarray(), page.axes
    except tifffile.TiffFileError:
        return None
    if axes.endswith("SYX") and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageReadError(f"{path}: TIFF with {arr.shape} samples is not supported")
    if arr.dtype.kind == "f":
        arr = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    elif arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: TIFF samples of type {arr.dtype} are not supported")
    color = np.ascontiguousarray(arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1])
    alpha = np.ascontiguousarray(arr[..., 3]) if arr.shape[2] == 4 else None
    return Picture(color, alpha)


def _tiff_is_16bit_color(img: Image.Image) -> bool:
    bits = getattr(img, "tag_v2", {}).get(258)
    if isinstance(bits, int):
        bits = (bits,)
    return isinstance(bits, (tuple, list)) and len(bits) >= 3 and max(bits) == 16


def _read_tiff16(path: Path) -> Picture | None:
    """16-bit colour TIFF through tifffile (None for a sample layout it does not hold)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        arr = page.asarray()
        axes = page.axes
        orientation = page.tags.get(274)
        orientation = int(orientation.value) if orientation is not None else 1
    if axes.endswith("SYX") and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim != 3 or arr.shape[2] < 3 or arr.dtype != np.uint16:
        return None
    arr = apply_orientation(arr, orientation)
    color = np.ascontiguousarray(arr[..., :3])
    alpha = np.ascontiguousarray(arr[..., 3]) if arr.shape[2] >= 4 else None
    return Picture(color, alpha)


# --------------------------------------------------------------------------- 16-bit PNG
def _read_png16(path: Path) -> Picture:
    """A 16-bit PNG through libpng (imagecodecs); its transparent colour (tRNS) and EXIF
    orientation read from the header chunks by Pillow."""
    import imagecodecs

    data = path.read_bytes()
    _check_png_chunks(path, data)
    try:
        arr = imagecodecs.png_decode(data)
    except imagecodecs.PngError as exc:
        msg = one_line(exc)
        if "crc" in msg.lower() or "data check" in msg:
            raise ImageReadError(f"{path}: corrupt PNG (bad checksum: {msg})") from None
        what = "truncated" if "too small" in msg or "end" in msg.lower() else "corrupt"
        raise ImageReadError(f"{path}: {what} PNG ({msg})") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    channels = arr.shape[2]
    color = arr[..., : 3 if channels >= 3 else 1]
    alpha = arr[..., -1] if channels in (2, 4) else None
    with Image.open(path) as img:
        key, exif = img.info.get("transparency"), img.info.get("exif")
    if key is not None and alpha is None:
        key = np.array(key if isinstance(key, tuple) else (key,), np.uint16)
        if key.size == color.shape[2]:
            alpha = np.where((color == key).all(axis=2), 0, 65535).astype(np.uint16)
    orientation = _exif_orientation(exif)
    color = np.ascontiguousarray(apply_orientation(color, orientation))
    if alpha is not None:
        alpha = np.ascontiguousarray(apply_orientation(alpha, orientation))
    return Picture(color, alpha)


def _check_png_chunks(path: Path, data: bytes) -> None:
    """Every chunk whole and its CRC right, up to IEND: libpng only warns (on stderr) about a
    damaged ancillary chunk, and Pillow then cannot open the file to read its metadata.
    Walked by hand, not by Pillow's verify(): for a bad CRC in a header chunk Pillow says only
    "cannot identify image file", where this names the chunk (tests/test_imageio_formats.py)."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ImageReadError(f"{path}: truncated PNG (chunk {kind!r} cut short)")
        if zlib.crc32(data[pos + 4 : end - 4]) != struct.unpack(">I", data[end - 4 : end])[0]:
            raise ImageReadError(f"{path}: corrupt PNG (bad checksum in chunk {kind!r})")
        if kind == b"IEND":
            return
        pos = end
    raise ImageReadError(f"{path}: truncated PNG (no IEND chunk)")


def _exif_orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    try:
        tags = Image.Exif()
        tags.load(exif)
        return int(tags.get(0x0112, 1))
    except Exception:  # a broken EXIF block never stops the image from loading
        return 1


#: PNG text chunk that marks our outputs, so that a rerun over the output folder can
#: recognise (and skip) them instead of upscaling them again.
PNG_MARK = ("Software", "tadsr upscale")


_EXIF_SOFTWARE, _EXIF_DESCRIPTION = 0x0131, 0x010E


def is_tadsr_output(path: Path) -> bool:
    """True for a PNG, JPEG or WebP that this tool wrote (the PNG text chunk, the EXIF
    Software tag; reads the header only)."""
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".webp"):
        return False
    try:
        with Image.open(path) as im:
            if suffix != ".png":
                return im.getexif().get(_EXIF_SOFTWARE) == PNG_MARK[1]
            return im.info.get(PNG_MARK[0]) == PNG_MARK[1]
    except Exception:
        return False


def is_complete_image(path: Path) -> bool:
    """True when ``path`` decodes as a whole image (an empty or cut file is not done)."""
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def _planes(pic: Picture) -> np.ndarray:
    """(H, W, C): the colour planes, then alpha."""
    if pic.alpha is None:
        return pic.color
    return np.concatenate([pic.color, pic.alpha[..., None]], axis=2)


def _png_text(pic: Picture) -> list[tuple[str, str]]:
    """Our PNG text entries: the mark, then the picture's own."""
    return [PNG_MARK, *(pic.text or {}).items()]


def _write_png16(fh, pic: Picture) -> None:
    """Encode a 16-bit PNG with libpng (imagecodecs), marked as ours by a tEXt chunk.

    The tEXt chunks are spliced in by hand: Pillow cannot write a 16-bit colour PNG (its
    "I;16" mode is gray only, so PngInfo is no use here), and imagecodecs.png_encode writes
    no text. 8-bit PNGs go through Pillow and PngInfo (`_encode`), and text is read back
    through Pillow's `Image.info` (`is_tadsr_output`)."""
    import imagecodecs

    arr = _planes(pic)  # gray as (H, W): libpng refuses a length-1 axis with stride 0
    data = imagecodecs.png_encode(
        arr[..., 0] if arr.shape[2] == 1 else arr, level=PNG_COMPRESS_LEVEL
    )
    end_of_ihdr = len(_PNG_SIGNATURE) + 25  # 4 length + 4 type + 13 data + 4 CRC
    fh.write(data[:end_of_ihdr])
    for key, value in _png_text(pic):
        text = key.encode("latin-1") + b"\0" + value.encode("latin-1")
        fh.write(struct.pack(">I", len(text)) + b"tEXt" + text)
        fh.write(struct.pack(">I", zlib.crc32(b"tEXt" + text)))
    fh.write(data[end_of_ihdr:])


# --------------------------------------------------------------------------- conversions
def picture_from_pil(img: Image.Image) -> Picture:
    """PIL image -> Picture. Gray modes stay gray; palette / CMYK / YCbCr become RGB(A)."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return Picture(np.asarray(img).astype(np.uint16)[..., None])
    if mode == "I":
        arr = np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
        return Picture(arr[..., None])
    if mode == "F":
        arr = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return Picture(arr[..., None])
    has_alpha = "A" in mode or "a" in mode or "transparency" in img.info
    gray = mode in ("1", "L", "LA", "La") or (mode == "P" and _palette_is_gray(img))
    target = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
    if mode != target:
        img = img.convert(target)
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    color = np.ascontiguousarray(arr[..., : 1 if gray else 3])
    alpha = np.ascontiguousarray(arr[..., -1]) if has_alpha else None
    return Picture(color, alpha)


def _palette_is_gray(img: Image.Image) -> bool:
    try:
        pal = np.asarray(img.getpalette() or [], np.uint8).reshape(-1, 3)
    except ValueError:
        return False
    return pal.size > 0 and bool((pal == pal[:, :1]).all())


def picture_to_pil(pic: Picture) -> Image.Image:
    """Picture -> PIL image ("L", "LA", "RGB", "RGBA", "I;16" for 16-bit gray, "F" for float gray).

    PIL cannot hold 16-bit colour or 16-bit gray with alpha; those are reduced to 8 bits.
    """
    if pic.bits == 16 and pic.gray and pic.alpha is None:
        return Image.fromarray(np.ascontiguousarray(pic.color[..., 0], np.uint16))
    if pic.bits == 32 and pic.gray and pic.alpha is None:
        return Image.fromarray(np.ascontiguousarray(pic.color[..., 0], np.float32))
    pic8 = to_uint8(pic)
    if pic8.alpha is None:
        arr = pic8.color[..., 0] if pic8.gray else pic8.color
    else:
        arr = np.dstack([pic8.color, pic8.alpha])
    return Image.fromarray(np.ascontiguousarray(arr))


def to_uint8(pic: Picture) -> Picture:
    """The same picture at 8 bits (rounded)."""
    if pic.bits == 8:
        return pic

    def conv(a: np.ndarray) -> np.ndarray:
        scaled = a.astype(np.float32) * (255.0 / pic.max_value)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    return Picture(conv(pic.color), None if pic.alpha is None else conv(pic.alpha))


def picture_from_array(arr: np.ndarray) -> tuple[Picture, tuple]:
    """numpy (H, W), (H, W, 1|2|3|4) uint8 / uint16 / float in [0, 1] -> (Picture, layout)."""
    arr = np.asarray(arr)
    layout = (arr.ndim, arr.shape[2] if arr.ndim == 3 else 0, arr.dtype)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or 0 in arr.shape:
        raise ValueError(f"expected an (H, W) or (H, W, 1|2|3|4) image array, got {arr.shape}")
    if arr.dtype.kind == "f":
        arr = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image arrays must be uint8, uint16 or float, not {arr.dtype}")
    c = arr.shape[2]
    n_color = 1 if c in (1, 2) else 3
    color = np.ascontiguousarray(arr[..., :n_color])
    alpha = np.ascontiguousarray(arr[..., -1]) if c in (2, 4) else None
    return Picture(color, alpha), layout


def picture_to_array(pic: Picture, layout: tuple) -> np.ndarray:
    """Inverse of picture_from_array: the same number of dimensions, channels and dtype."""
    ndim, _, dtype = layout
    arr = _planes(pic)
    if ndim == 2:
        arr = arr[..., 0]
    if np.dtype(dtype).kind == "f":
        return arr.astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return arr >= 128
    return arr


# --------------------------------------------------------------------------- writing
#: quality of JPEG and WebP outputs when none is given
DEFAULT_QUALITY = 95
#: `--format` choices -> the suffix written
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}


def format_loss(pic: Picture, suffix: str) -> str | None:
    """What a file of this suffix cannot hold of `pic`, as the words of a warning (None: all of
    it): JPEG has no alpha (composited on white) and JPEG, WebP and BMP hold 8 bits."""
    suffix = suffix.lower()
    lost = []
    if suffix in (".jpg", ".jpeg") and pic.alpha is not None:
        lost.append("JPEG has no transparency: composited on white")
    if suffix in (".jpg", ".jpeg", ".webp", ".bmp") and pic.bits != 8:
        fmt = {".webp": "WebP", ".bmp": "BMP"}.get(suffix, "JPEG")
        lost.append(f"{fmt} holds 8 bits per channel: {pic.bits}-bit result written at 8 bits")
    return "; ".join(lost) or None


def write_image(path: str | os.PathLike, pic: Picture, quality: int | None = None) -> Path:
    """Write atomically (temporary file beside it, then rename); the format follows the suffix.

    PNG and TIFF keep 16 bits; JPEG, WebP and BMP are 8-bit, and JPEG composites alpha on
    white (`format_loss` says what is lost). `quality` (1-100, default 95): JPEG and WebP.
    Raises ImageWriteError('FILE: reason').
    """
    path = Path(path)
    try:
        with atomic_write(path) as tmp, open(tmp, "wb") as fh:
            _encode(fh, pic, path.suffix.lower(), quality or DEFAULT_QUALITY)
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot write: {exc.strerror or one_line(exc)}") from None
    return path


def _encode(fh, pic: Picture, suffix: str, quality: int = DEFAULT_QUALITY) -> None:
    if pic.bits == 32:  # float pictures are written at 16 bits where the format allows
        scale = lambda a: np.rint(a * 65535.0).astype(np.uint16)  # noqa: E731
        alpha = None if pic.alpha is None else scale(pic.alpha)
        pic = Picture(scale(pic.color), alpha, text=pic.text)
    if suffix in (".png", ""):
        if pic.bits == 16:
            _write_png16(fh, pic)
        else:
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            for key, value in _png_text(pic):
                info.add_text(key, value)
            picture_to_pil(pic).save(
                fh, format="PNG", compress_level=PNG_COMPRESS_LEVEL, pnginfo=info
            )
        return
    if suffix in (".tif", ".tiff") and pic.bits == 16:
        import tifffile

        arr = _planes(pic)
        extra = ["unassalpha"] if pic.alpha is not None else None
        photometric = "minisblack" if pic.gray else "rgb"
        tifffile.imwrite(fh, arr[..., 0] if arr.shape[2] == 1 else arr, photometric=photometric,
                         extrasamples=extra)  # fmt: skip
        return
    fmt = {
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".webp": "WEBP",
        ".bmp": "BMP",
        ".tif": "TIFF",
        ".tiff": "TIFF",
    }.get(suffix)
    if fmt is None:
        raise OSError(f"unsupported output format {suffix!r}")
    img = picture_to_pil(pic)
    if fmt in ("JPEG", "BMP", "WEBP") and img.mode in ("I;16", "F"):
        img = picture_to_pil(to_uint8(pic))
    if fmt == "JPEG" and img.mode in ("RGBA", "LA"):
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
        img = img.convert("L" if pic.gray else "RGB")
    if fmt not in ("JPEG", "WEBP"):
        img.save(fh, format=fmt)
        return
    exif = Image.Exif()
    exif[_EXIF_SOFTWARE] = PNG_MARK[1]  # marks the file as ours, as the PNG text chunk does
    for key, value in (pic.text or {}).items():  # e.g. the fidelity used, in the description
        exif[_EXIF_DESCRIPTION] = f"{key}={value}"
    img.save(fh, format=fmt, quality=quality, exif=exif.tobytes())
