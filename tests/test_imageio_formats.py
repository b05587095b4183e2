"""Image files: every kind round-trips (gray, alpha, palette, 16-bit), EXIF orientation is
applied, and every bad input gives one ImageReadError line naming the file."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from tadsr.inference.imageio import (
    ImageReadError,
    ImageWriteError,
    Picture,
    apply_orientation,
    picture_from_array,
    picture_to_array,
    read_image,
    write_image,
)

RNG = np.random.default_rng(0)


def _rgb(h=9, w=13):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp"])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA"])
def test_lossless_8bit_roundtrip(tmp_path, suffix, mode):
    if suffix == ".bmp" and "A" in mode:
        pytest.skip("Pillow's BMP keeps no alpha")
    arr = RNG.integers(0, 256, (9, 13, len(mode)), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode)
    path = tmp_path / f"x{suffix}"
    kw = {"lossless": True} if suffix == ".webp" else {}
    img.save(path, **kw)
    pic = read_image(path)
    assert pic.bits == 8
    want_gray = mode in ("L", "LA") and suffix != ".webp"  # WebP stores gray as RGB
    assert pic.gray == want_gray
    assert (pic.alpha is not None) == ("A" in mode)
    got = pic.color[..., 0] if pic.gray else pic.color
    expect = arr[..., 0] if want_gray else np.asarray(img.convert("RGB"))
    np.testing.assert_array_equal(got, expect)
    if pic.alpha is not None:
        np.testing.assert_array_equal(pic.alpha, arr[..., -1])
    # and back through our writer
    out = tmp_path / "back.png"
    write_image(out, pic)
    again = read_image(out)
    np.testing.assert_array_equal(again.color, pic.color)
    assert (again.alpha is None) == (pic.alpha is None)


def test_jpeg_and_palette(tmp_path):
    yy, xx = np.mgrid[0:9, 0:13]
    arr = np.stack([xx * 15, yy * 20, xx * yy * 2], axis=2).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    pic = read_image(tmp_path / "a.jpg")
    assert pic.color.shape == (9, 13, 3) and pic.bits == 8
    assert np.abs(pic.color.astype(int) - arr).mean() < 8
    Image.fromarray(arr).convert("L").save(tmp_path / "g.jpg")
    assert read_image(tmp_path / "g.jpg").gray
    pal = Image.fromarray(arr).quantize(16)
    pal.save(tmp_path / "p.png")
    pic = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(pic.color, np.asarray(pal.convert("RGB")))
    pal.save(tmp_path / "pt.png", transparency=0)
    assert read_image(tmp_path / "pt.png").alpha is not None


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png16_roundtrip_exact(tmp_path, channels):
    arr = RNG.integers(0, 65536, (11, 7, channels), dtype=np.uint16)
    pic, layout = picture_from_array(arr)
    write_image(tmp_path / "a.png", pic)
    back = read_image(tmp_path / "a.png")
    assert back.bits == 16
    np.testing.assert_array_equal(picture_to_array(back, layout), arr)


def test_png16_from_pillow_and_filters(tmp_path):
    """Decoding a file another encoder wrote (Pillow's I;16 with its own row filters)."""
    yy, xx = np.mgrid[0:40, 0:50]
    gray = ((xx * 1200 + yy * 700) % 65536).astype(np.uint16)
    Image.fromarray(gray).save(tmp_path / "g.png")
    pic = read_image(tmp_path / "g.png")
    assert pic.bits == 16 and pic.gray
    np.testing.assert_array_equal(pic.color[..., 0], gray)
    # our writer's output is read back identically by Pillow
    write_image(tmp_path / "w.png", pic)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "w.png")), gray)


def test_png16_unfilter_all_filter_types(tmp_path):
    """Hand-build a PNG whose rows use None, Sub, Up, Average and Paeth in turn."""
    h, w, bpp = 10, 6, 6
    img = RNG.integers(0, 65536, (h, w, 3), dtype=np.uint16)
    raw = img.astype(">u2").view(np.uint8).reshape(h, w, bpp).astype(int)
    rows = []
    for y in range(h):
        ft = y % 5
        a = np.zeros_like(raw[y])
        a[1:] = raw[y, :-1]
        b = raw[y - 1] if y else np.zeros_like(raw[y])
        c = np.zeros_like(raw[y])
        if y:
            c[1:] = raw[y - 1, :-1]
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = [0 * a, a, b, (a + b) // 2, paeth][ft]
        rows.append(bytes([ft]) + ((raw[y] - pred) % 256).astype(np.uint8).tobytes())
    body = zlib.compress(b"".join(rows))

    def chunk(k, d):
        return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    (tmp_path / "f.png").write_bytes(png + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    np.testing.assert_array_equal(read_image(tmp_path / "f.png").color, img)


def test_tiff16(tmp_path):
    gray = RNG.integers(0, 65536, (8, 9), dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "g.tif")
    pic = read_image(tmp_path / "g.tif")
    assert pic.bits == 16 and pic.gray
    np.testing.assert_array_equal(pic.color[..., 0], gray)
    tifffile = pytest.importorskip("tifffile")
    rgb = RNG.integers(0, 65536, (8, 9, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    pic = read_image(tmp_path / "c.tif")
    assert pic.bits == 16
    np.testing.assert_array_equal(pic.color, rgb)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    arr = _rgb(6, 10)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.png", exif=exif)
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").color, want)
    np.testing.assert_array_equal(apply_orientation(arr, orientation), want)


def test_png16_exif_orientation(tmp_path):
    arr = RNG.integers(0, 65536, (4, 7, 3), dtype=np.uint16)
    write_image(tmp_path / "a.png", Picture(arr))
    data = (tmp_path / "a.png").read_bytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    blob = exif.tobytes()
    chunk = struct.pack(">I", len(blob)) + b"eXIf" + blob
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + blob))
    cut = data.index(b"IDAT") - 4
    (tmp_path / "b.png").write_bytes(data[:cut] + chunk + data[cut:])
    np.testing.assert_array_equal(read_image(tmp_path / "b.png").color, np.rot90(arr, -1))


# --------------------------------------------------------------------------- errors
def _png_bytes(arr):
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _bad_files(tmp_path):
    good = _png_bytes(_rgb(32, 32))
    png16 = tmp_path / "ok16.png"
    write_image(png16, Picture(RNG.integers(0, 65536, (32, 32, 3), dtype=np.uint16)))
    jpg = tmp_path / "ok.jpg"
    Image.fromarray(_rgb(64, 64)).save(jpg)
    cases = {
        "missing.png": (None, "no such file"),
        "empty.png": (b"", "empty file"),
        "text.png": (b"hello, I am not an image\n" * 10, "not an image"),
        "trunc.png": (good[: len(good) // 2], "truncated"),
        "trunc16.png": (png16.read_bytes()[:-40], "truncated"),
        "trunc.jpg": (jpg.read_bytes()[: len(jpg.read_bytes()) // 2], "truncated"),
        "badcrc16.png": (None, "checksum"),
    }
    data16 = bytearray(png16.read_bytes())
    data16[60] ^= 0xFF  # inside the IDAT chunk
    cases["badcrc16.png"] = (bytes(data16), "checksum")
    for name, (content, _) in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    return cases


def test_bad_inputs_give_one_line_naming_the_file(tmp_path):
    for name, (_, reason) in _bad_files(tmp_path).items():
        with pytest.raises(ImageReadError) as info:
            read_image(tmp_path / name)
        msg = str(info.value)
        assert str(tmp_path / name) in msg and reason in msg and "\n" not in msg, msg
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_pixel_limit_is_an_error(tmp_path):
    Image.fromarray(_rgb(20, 30)).save(tmp_path / "a.bmp")
    with pytest.raises(ImageReadError, match="too large: 30x20"):
        read_image(tmp_path / "a.bmp", max_pixels=599)
    assert read_image(tmp_path / "a.bmp", max_pixels=600).width == 30
    # a PNG header claiming 100000 x 100000 pixels is refused before any decoding
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    head += struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0) + b"\0\0\0\0"
    (tmp_path / "bomb.png").write_bytes(head + b"\0" * 64)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "bomb.png")


def test_write_is_atomic_and_reports_errors(tmp_path):
    pic = Picture(_rgb())
    with pytest.raises(ImageWriteError, match="cannot write"):
        write_image(tmp_path / "nofolder" / "a.png", pic)
    target = tmp_path / "a.png"
    target.write_bytes(b"old")
    write_image(target, pic)
    assert read_image(target).width == 13
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary left


def test_array_layouts_roundtrip():
    for arr in [RNG.integers(0, 256, (5, 6), dtype=np.uint8),
                RNG.random((5, 6, 4)).astype(np.float32),
                RNG.integers(0, 65536, (5, 6, 2), dtype=np.uint16)]:  # fmt: skip
        pic, layout = picture_from_array(arr)
        back = picture_to_array(pic, layout)
        assert back.shape == arr.shape and back.dtype == arr.dtype
        np.testing.assert_array_equal(back, arr)
    with pytest.raises(ValueError):
        picture_from_array(np.zeros((4, 4, 5), np.uint8))


def test_float_tiff_bad_crc_png_and_animated_gif(tmp_path):
    import struct

    import tifffile

    a = np.random.default_rng(0).random((12, 10, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", a, photometric="rgb")
    pic = read_image(tmp_path / "f.tif")
    assert pic.color.dtype == np.float32 and np.abs(pic.color - a).max() == 0

    Image.fromarray((a * 255).astype(np.uint8)).save(tmp_path / "ok.png")
    b = bytearray((tmp_path / "ok.png").read_bytes())
    i = b.find(b"IDAT")
    b[i + 4 + struct.unpack(">I", b[i - 4 : i])[0]] ^= 0xFF  # the IDAT checksum
    (tmp_path / "bad.png").write_bytes(bytes(b))
    with pytest.raises(ImageReadError, match="bad.png: corrupt.*checksum"):
        read_image(tmp_path / "bad.png")

    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue", "green")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    pic = read_image(tmp_path / "a.gif")
    assert pic.note == "GIF with 3 frames: the first frame is upscaled"
    assert tuple(pic.color[0, 0]) == (255, 0, 0)
