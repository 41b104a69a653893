"""Image reading/writing: RGB order, EXIF orientation, alpha, gray, 16 bit, CMYK, bad files."""

from __future__ import annotations

import fcntl
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps, features
from skimage import data

from common.files import sweep_stale_temps
from runtime.io import Header, ImageError, apply_orientation, read_image, undo_orientation, write_image
from tests.runtime_fixtures import png_declaring, write_jpeg

RGB = data.astronaut()[:40, :56]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_opencv_display_order(tmp_path, orientation):
    path = tmp_path / "o.jpg"
    pil = Image.fromarray(RGB)
    exif = pil.getexif()
    exif[0x0112] = orientation
    pil.save(path, exif=exif.tobytes(), quality=95)
    upright = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # OpenCV applies EXIF here
    image = read_image(path)
    assert image.pixels.shape == ((56, 40, 3) if orientation >= 5 else (40, 56, 3))
    np.testing.assert_array_equal(image.pixels, upright)
    assert image.jpeg_quality.quality == 95


def test_rgb_order_and_jpeg_quality(tmp_path):
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, RGB)
    assert image.alpha is None and image.jpeg_quality is None
    assert read_image(write_jpeg(tmp_path / "q.jpg", RGB, 10)).jpeg_quality.quality == 10


def test_alpha_and_16_bit_round_trip(tmp_path):
    rgba16 = np.dstack([RGB.astype(np.uint16) * 257, np.arange(40 * 56, dtype=np.uint16).reshape(40, 56) * 29])
    path = tmp_path / "a16.png"
    write_image(path, rgba16[..., :3], rgba16[..., 3])
    image = read_image(path)
    assert image.pixels.dtype == np.uint16 and image.alpha.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, rgba16[..., :3])
    np.testing.assert_array_equal(image.alpha, rgba16[..., 3])


def test_gray_stays_gray(tmp_path):
    image = read_image(write_jpeg(tmp_path / "g.jpg", data.camera()[:32, :48], 30))
    assert image.pixels.shape == (32, 48) and image.jpeg_quality.quality == 30


def test_cmyk_jpeg_decodes_to_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(RGB).convert("CMYK").save(path, quality=95)
    expected = np.asarray(Image.open(path).convert("RGB"))
    image = read_image(path)
    assert image.pixels.shape == RGB.shape and image.pixels.dtype == np.uint8
    assert np.abs(image.pixels.astype(int) - expected).mean() < 2  # same colours as Pillow's conversion
    assert np.abs(image.pixels.astype(int) - RGB).mean() < 10  # and close to the source


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty file"), (b"this is text, not a JPEG", "not an image"), (None, "truncated JPEG")],
)
def test_bad_files_raise_image_error(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is None:
        full = write_jpeg(tmp_path / "full.jpg", RGB, 90).read_bytes()
        content = full[: len(full) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        read_image(path)
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_write_errors_are_image_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ImageError, match="cannot write"):
        write_image(blocker / "out.png", RGB)  # parent is a file
    with pytest.raises(ImageError, match="cannot"):
        write_image(tmp_path / "out.jpg", RGB.astype(np.uint16))  # libjpeg has no 16-bit
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary left behind


def test_data_after_end_of_image_is_not_truncation(tmp_path):
    """Motion photos append a video after the JPEG's EOI marker; that is a valid JPEG."""
    path = tmp_path / "motion.jpg"
    path.write_bytes(write_jpeg(tmp_path / "still.jpg", RGB, 80).read_bytes() + bytes(200_000))
    np.testing.assert_array_equal(read_image(path).pixels, read_image(tmp_path / "still.jpg").pixels)


def test_sweep_removes_stale_temporaries_of_many_targets(tmp_path):
    targets = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "sub" / "c.tiff"]
    (tmp_path / "sub").mkdir()
    temps = [
        tmp_path / ".a.abcd1234.tmp.png",
        tmp_path / ".b.x_Y9z8w7.tmp.png",
        tmp_path / "sub" / ".c.12345678.tmp.tiff",
    ]
    keep = [tmp_path / ".other.abcd1234.tmp.png", tmp_path / ".a.short.tmp.png", tmp_path / "a.png"]
    for path in temps + keep:
        path.write_bytes(b"x")
    (tmp_path / ".b.abcdefgh.tmp.png").symlink_to(keep[0])  # a link is never ours to delete
    assert sorted(sweep_stale_temps(targets)) == sorted(temps)
    assert all(path.exists() for path in keep)
    temps[0].write_bytes(b"a live writer's")
    with open(temps[0], "rb") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)  # as atomic_path holds it until the rename
        assert sweep_stale_temps(targets) == [] and temps[0].exists()


def test_a_jpeg_is_sized_from_its_frame_header_as_pillow_sizes_it(tmp_path):
    """read_image checks --max-pixels on a JPEG from its own frame header (no Pillow import, issue 34): the size
    Pillow reads, for baseline, progressive and EXIF-thumbnail files; a header without a usable frame (height left to
    a DNL marker) goes to Pillow's reader."""
    from runtime.io import _jpeg_frame_size

    rgb = data.astronaut()[:37, :53]
    files = [write_jpeg(tmp_path / "base.jpg", rgb, 80)]
    progressive = tmp_path / "progressive.jpg"
    cv2.imwrite(str(progressive), rgb[..., ::-1], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    thumbnail = tmp_path / "thumb.jpg"
    Image.fromarray(rgb).save(thumbnail, exif=Image.Exif(), quality=90)
    big_app = tmp_path / "app.jpg"  # an APP segment holding a JPEG of its own (its SOF must not count)
    inner = files[0].read_bytes()
    big_app.write_bytes(b"\xff\xd8\xff\xe2" + (len(inner) + 2).to_bytes(2, "big") + inner + files[0].read_bytes()[2:])
    tables_first = tmp_path / "tables_first.jpg"  # the Huffman tables (DHT) before the frame header (SOF): legal
    tables_first.write_bytes(_huffman_tables_before_frame(files[0].read_bytes()))
    files += [progressive, thumbnail, big_app, tables_first]
    for path in files:
        with Image.open(path) as image:
            assert _jpeg_frame_size(path.read_bytes()) == image.size == (53, 37), path.name
        assert read_image(path).pixels.shape[:2] == (37, 53)
        with pytest.raises(ImageError, match=r"declares 53×37 = 0\.001961 MP, over the limit of 0\.00196 MP"):
            read_image(path, max_pixels=53 * 37 - 1)
    header = bytearray(files[0].read_bytes())
    sof = header.index(b"\xff\xc0")
    header[sof + 5 : sof + 7] = b"\0\0"  # height 0: defined later by a DNL marker
    assert _jpeg_frame_size(bytes(header)) is None
    np.testing.assert_array_equal(read_image(tables_first).pixels, read_image(files[0]).pixels)


def _huffman_tables_before_frame(jpeg: bytes) -> bytes:
    """libjpeg's baseline file (… SOF0, DHT…, SOS …) with its DHT segments moved before SOF0."""
    sof = jpeg.index(b"\xff\xc0")
    tables = sof + 2 + int.from_bytes(jpeg[sof + 2 : sof + 4], "big")
    scan = jpeg.index(b"\xff\xda")
    assert jpeg[tables : tables + 2] == b"\xff\xc4"
    return jpeg[:sof] + jpeg[tables:scan] + jpeg[sof:tables] + jpeg[scan:]


@pytest.mark.parametrize("shape", [(3000, 4), (4, 3000)])
def test_the_size_limit_counts_both_sides(tmp_path, shape):
    """A tall, narrow image (or a wide, flat one) of 12,000 px is over a 10,000 px limit, refused before decoding;
    exactly at the limit it is read (issue 38: a size from one side only lets a 1 × 10⁶ bomb through)."""
    path = tmp_path / "narrow.png"
    cv2.imwrite(str(path), np.zeros(shape, np.uint8))
    h, w = shape
    with pytest.raises(ImageError, match=rf"declares {w}×{h} = 0\.012 MP, over the limit of 0\.011999 MP"):
        read_image(path, max_pixels=h * w - 1)
    assert read_image(path, max_pixels=h * w).pixels.shape == shape


def test_sixteen_bit_suffixes_in_capitals(tmp_path):
    """photo.PNG and photo.TIFF store 16 bits like their lower-case names; .tif is .tiff (the same format)."""
    deep = (np.arange(12 * 8 * 3, dtype=np.uint16).reshape(12, 8, 3) * 97).astype(np.uint16)
    for name in ("deep.PNG", "deep.TIFF", "deep.tif", "deep.TIF"):
        write_image(tmp_path / name, deep)
        assert np.array_equal(read_image(tmp_path / name).pixels, deep)


def _exif(order: str, orientation: tuple[int, int] | None) -> bytes:
    """An EXIF block (TIFF structure, byte ``order`` "II" or "MM") whose IFD0 holds a Make entry and then, when given,
    the orientation as (TIFF type 3 SHORT or 4 LONG, value)."""
    fmt = "<" if order == "II" else ">"
    entries = [struct.pack(fmt + "HHI4s", 0x010F, 2, 4, b"Cam\0")]  # Make (ASCII): the orientation is not first
    if orientation is not None:
        kind, value = orientation
        packed = struct.pack(fmt + ("H" if kind == 3 else "I"), value).ljust(4, b"\0")
        entries.append(struct.pack(fmt + "HHI4s", 0x0112, kind, 1, packed))
    ifd = struct.pack(fmt + "H", len(entries)) + b"".join(entries) + struct.pack(fmt + "I", 0)
    return b"Exif\0\0" + order.encode() + struct.pack(fmt + "HI", 42, 8) + ifd


@pytest.mark.parametrize(
    ("order", "orientation", "turns"),
    [("II", (3, 6), -1), ("MM", (4, 6), -1), ("II", (4, 8), 1), ("MM", (3, 3), 2), ("II", None, 0)],
)
def test_exif_orientation_of_either_byte_order_and_type(tmp_path, order, orientation, turns):
    """Cameras write EXIF little- or big-endian, the orientation as a SHORT or a LONG, after other entries; without
    one the image is as stored. 6: turned 90° clockwise, 8: counter-clockwise, 3: 180°."""
    path = tmp_path / "o.jpg"
    Image.fromarray(RGB).save(path, exif=_exif(order, orientation), quality=95)
    stored = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION), cv2.COLOR_BGR2RGB)
    image = read_image(path)
    assert image.orientation == (orientation[1] if orientation else 1)
    np.testing.assert_array_equal(image.pixels, np.rot90(stored, turns))


def test_exif_with_the_jpeg_prefix_in_a_webp(tmp_path):
    """A WebP whose EXIF chunk starts with JPEG's ``Exif\\0\\0`` (OpenCV passes it on as is) is turned upright by its
    orientation (6: 90° clockwise), as Pillow reads it."""
    path = tmp_path / "o.webp"
    Image.fromarray(RGB).save(path, lossless=True)
    riff = path.read_bytes()
    exif = _exif("II", (3, 6))
    # the extended header a WebP with metadata needs: flags (EXIF), canvas width − 1 and height − 1
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x08, 0, 0, 0]) + (55).to_bytes(3, "little")
    vp8x += (39).to_bytes(3, "little")
    chunks = vp8x + riff[12:] + b"EXIF" + struct.pack("<I", len(exif)) + exif + bytes(len(exif) % 2)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks)
    with Image.open(path) as pil:
        assert pil.getexif()[0x0112] == 6
    image = read_image(path)
    assert image.orientation == 6
    np.testing.assert_array_equal(image.pixels, np.rot90(RGB, -1))


def test_fill_bytes_between_jpeg_segments(tmp_path):
    """0xFF fill bytes may precede any marker (some encoders pad with them): the file is read like the plain one."""
    plain = write_jpeg(tmp_path / "plain.jpg", RGB, 80)
    data = plain.read_bytes()
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data[:2] + b"\xff\xff\xff" + data[2:])  # after SOI, before the first segment's marker
    image = read_image(padded)
    np.testing.assert_array_equal(image.pixels, read_image(plain).pixels)
    assert image.jpeg_quality.quality == 80


@pytest.mark.parametrize("planes", [(0, 1, 0), (0, 0, 1), (1, 0, 0)])
def test_rgba_with_two_equal_planes_stays_colour(tmp_path, planes):
    """Gray+alpha is recognised by R = G = B; two equal planes alone (R = B, R = G, G = B) are colour."""
    rgb = np.dstack([RGB[..., p] for p in planes])
    alpha = np.full(RGB.shape[:2], 200, np.uint8)
    write_image(tmp_path / "rb.png", rgb, alpha)
    image = read_image(tmp_path / "rb.png")
    np.testing.assert_array_equal(image.pixels, rgb)
    np.testing.assert_array_equal(image.alpha, alpha)


def test_an_8_bit_os2_bitmap_keeps_its_gray_palette(tmp_path):
    """An OS/2 bitmap (12-byte header) of 8 bits per pixel with a gray palette is read as gray, as other gray BMPs."""
    gray = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    header = struct.pack("<IHHHH", 12, 16, 16, 1, 8)
    palette = bytes(v for i in range(256) for v in (i, i, i))  # RGBTRIPLEs
    pixels = gray[::-1].tobytes()  # bottom-up, 16 bytes a row (4-aligned)
    offset = 14 + 12 + len(palette)
    path = tmp_path / "os2_gray.bmp"
    path.write_bytes(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + palette + pixels)
    np.testing.assert_array_equal(read_image(path).pixels, gray)


def test_a_24_bit_os2_bitmap_is_read_in_colour(tmp_path):
    """An OS/2 bitmap (12-byte header) of 24 bits per pixel is read as the RGB it stores, not as gray."""
    rgb = RGB[:16, :16]
    header = struct.pack("<IHHHH", 12, 16, 16, 1, 24)
    pixels = rgb[::-1, :, ::-1].tobytes()  # bottom-up BGR, 48 bytes a row (4-aligned)
    offset = 14 + 12
    path = tmp_path / "os2_colour.bmp"
    path.write_bytes(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + pixels)
    np.testing.assert_array_equal(read_image(path).pixels, rgb)


def test_error_lines_in_full(tmp_path):
    """What a user reads when an image cannot be read or written: the path, what is wrong, what to do."""
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.zeros((30, 40), np.uint8))
    with pytest.raises(ImageError) as caught:
        read_image(big, max_pixels=1000)
    assert str(caught.value) == (
        f"{big}: declares 40×30 = 0.0012 MP, over the limit of 0.001 MP "
        "(raise it with --max-pixels if the machine has the memory)"
    )
    deep = np.zeros((4, 4, 3), np.uint16)
    for name, suffix in (("deep.jpg", ".jpg"), ("deep", "(no suffix)")):
        with pytest.raises(ImageError) as caught:
            write_image(tmp_path / name, deep)
        assert str(caught.value) == f"{tmp_path / name}: {suffix} cannot store 16-bit images; use .png or .tiff"
    floating = tmp_path / "float.tiff"
    cv2.imwrite(str(floating), np.zeros((4, 4), np.float32))
    with pytest.raises(ImageError) as caught:
        read_image(floating)
    assert str(caught.value) == f"{floating}: unsupported sample type float32 (8- and 16-bit integer images only)"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_and_the_callers_pixels(tmp_path, dtype):
    """Gray+alpha is written and read back as gray+alpha (8 and 16 bits); a written array is the caller's still,
    unchanged, unless it gives it up (``in_place``), and both write the same file."""
    scale = 257 if dtype == np.uint16 else 1
    gray = data.camera()[:32, :48].astype(dtype) * dtype(scale)
    alpha = (np.arange(32 * 48).reshape(32, 48) % 256 * scale).astype(dtype)
    write_image(tmp_path / "ga.png", gray, alpha)
    image = read_image(tmp_path / "ga.png")
    np.testing.assert_array_equal(image.pixels, gray)
    np.testing.assert_array_equal(image.alpha, alpha)

    rgb = RGB.astype(dtype) * dtype(scale)
    kept = rgb.copy()
    write_image(tmp_path / "kept.png", kept)
    np.testing.assert_array_equal(kept, rgb)  # not turned to BGR behind the caller's back
    write_image(tmp_path / "given.png", rgb.copy(), in_place=True)
    for name in ("kept.png", "given.png"):
        np.testing.assert_array_equal(read_image(tmp_path / name).pixels, rgb)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_two_channel_gray_alpha_image_keeps_gray_and_alpha_apart(tmp_path, monkeypatch, dtype):
    """OpenCV decodes a PAM of tuple type GRAYSCALE_ALPHA as two channels, gray then alpha (PNG, WebP and AVIF
    gray+alpha come as BGRA): gray is what is restored, alpha is kept. Pillow cannot size a PAM, so its size check
    is given the header's size here (read_image refuses PAMs otherwise)."""
    maxval = 65535 if dtype == np.uint16 else 255
    gray = (np.arange(6 * 5).reshape(6, 5) * (maxval // 40)).astype(dtype)
    alpha = np.full((6, 5), maxval // 3, dtype)
    header = f"P7\nWIDTH 5\nHEIGHT 6\nDEPTH 2\nMAXVAL {maxval}\nTUPLTYPE GRAYSCALE_ALPHA\nENDHDR\n".encode()
    path = tmp_path / "ga.pam"
    path.write_bytes(header + np.dstack([gray, alpha]).astype(np.dtype(dtype).newbyteorder(">")).tobytes())
    monkeypatch.setattr("runtime.io.read_header", lambda f: Header((5, 6)))
    image = read_image(path)
    assert image.pixels.dtype == image.alpha.dtype == dtype
    np.testing.assert_array_equal(image.pixels, gray)
    np.testing.assert_array_equal(image.alpha, alpha)


def test_more_error_lines_in_full(tmp_path):
    """The path and what is wrong, one line each: empty, missing, unknown and corrupt files, an output that is a
    folder."""
    empty, text, corrupt = tmp_path / "empty.png", tmp_path / "text.png", tmp_path / "corrupt.png"
    empty.write_bytes(b"")
    text.write_bytes(b"this is text, not an image")
    png = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    idat = png.find(b"IDAT")
    png[idat + 4 : idat + 12] = bytes(8)  # a header Pillow sizes, image data libpng refuses
    corrupt.write_bytes(png)
    full = write_jpeg(tmp_path / "full.jpg", RGB, 90).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) // 2])
    expected = {
        empty: "empty file",
        tmp_path / "missing.png": "no such file",
        text: "not an image this tool can decode (unknown format or corrupt header; its size must be readable before "
        "decoding: UnidentifiedImageError)",
        corrupt: "not an image OpenCV can decode (corrupt, or an unsupported format)",
        tmp_path / "cut.jpg": "truncated JPEG (no end-of-image marker)",
    }
    for path, message in expected.items():
        with pytest.raises(ImageError) as caught:
            read_image(path)
        assert str(caught.value) == f"{path}: {message}"
    taken = tmp_path / "taken.png"
    taken.mkdir()
    with pytest.raises(ImageError) as caught:
        write_image(taken, RGB)  # a folder of that name
    assert str(caught.value) == f"{taken}: cannot write (Is a directory)"


def test_gray_is_written_gray_and_a_single_pixel_is_an_image(tmp_path):
    """A gray image is written as a gray file (one channel, not three equal ones), and a 1 × 1 one reads back."""
    gray = data.camera()[:32, :48]
    write_image(tmp_path / "g.png", gray)
    assert cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_UNCHANGED).shape == (32, 48)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png").pixels, gray)
    write_image(tmp_path / "dot.png", gray[:1, :1])
    np.testing.assert_array_equal(read_image(tmp_path / "dot.png").pixels, gray[:1, :1])


def test_an_oriented_image_turns_its_alpha_too(tmp_path):
    """A PNG with alpha and EXIF orientation 6 (turned 90° clockwise): pixels and alpha come upright together."""
    alpha = (np.arange(40 * 56).reshape(40, 56) % 251).astype(np.uint8)
    path = tmp_path / "o.png"
    Image.fromarray(np.dstack([RGB, alpha])).save(path, exif=_exif("II", (3, 6)))
    image = read_image(path)
    assert image.orientation == 6
    np.testing.assert_array_equal(image.pixels, np.rot90(RGB, -1))
    np.testing.assert_array_equal(image.alpha, np.rot90(alpha, -1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_undo_orientation_stores_an_upright_image_as_it_was(orientation):
    """What a file stores, turned upright and turned back, is what it stored (the consistent mode writes this way)."""
    assert np.array_equal(undo_orientation(apply_orientation(RGB, orientation), orientation), RGB)


def test_size_lines_of_huge_headers_in_full(tmp_path):
    """A JPEG declaring 60000 × 60000 (over 32767: sizes are unsigned) and a PNG past Pillow's own bomb limit (only
    its pixel count known) are refused before decoding, with the size they declare."""
    jpeg = bytearray(write_jpeg(tmp_path / "small.jpg", RGB, 80).read_bytes())
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    (tmp_path / "huge.jpg").write_bytes(jpeg)
    (tmp_path / "bomb.png").write_bytes(png_declaring(20000, 10000))
    limit = "(raise it with --max-pixels if the machine has the memory)"
    for name, declared, max_pixels in (("huge.jpg", "60000×60000 = 3600 MP", 200_000_000),
                                       ("bomb.png", "200 MP", 100_000_000)):  # fmt: skip
        with pytest.raises(ImageError) as caught:
            read_image(tmp_path / name, max_pixels)
        assert str(caught.value) == (
            f"{tmp_path / name}: declares {declared}, over the limit of {max_pixels // 10**6} MP {limit}"
        )


def test_an_output_without_a_suffix_is_named_so(tmp_path):
    with pytest.raises(ImageError) as caught:
        write_image(tmp_path / "restored", RGB)
    assert str(caught.value).startswith(f"{tmp_path / 'restored'}: cannot encode as (no suffix): ")
    assert not list(tmp_path.iterdir())


def test_a_gray_alpha_tiff_keeps_its_alpha(tmp_path):
    """An 8-bit gray+alpha TIFF (Pillow's "LA"), which OpenCV's reader decodes as gray alone, keeps its alpha, and a
    restored output written from it is transparent where the input is."""
    gray = data.camera()[:32, :48]
    alpha = (np.arange(32 * 48).reshape(32, 48) % 251).astype(np.uint8)
    path = tmp_path / "la.tiff"
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(path)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, gray)
    np.testing.assert_array_equal(image.alpha, alpha)
    write_image(tmp_path / "out.png", image.pixels, image.alpha)
    with Image.open(tmp_path / "out.png") as written:  # gray+alpha is written as RGBA of equal planes
        np.testing.assert_array_equal(np.asarray(written), np.dstack([gray, gray, gray, alpha]))


def test_an_rgba_tiff_keeps_its_colours_and_orientation(tmp_path):
    """An 8-bit RGBA TIFF (unassociated alpha, as Pillow and image editors write it), whose colours OpenCV's reader
    premultiplies by alpha, is read with its colours as stored, turned upright by its Orientation tag (6: 90°
    clockwise); gray+alpha written as a TIFF reads back gray."""
    alpha = (np.arange(40 * 56).reshape(40, 56) % 251).astype(np.uint8)
    path = tmp_path / "rgba.tiff"
    Image.fromarray(np.dstack([RGB, alpha])).save(path, tiffinfo={0x0112: 6})
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, np.rot90(RGB, -1))
    np.testing.assert_array_equal(image.alpha, np.rot90(alpha, -1))
    gray = RGB[..., 1]
    write_image(tmp_path / "ga.tiff", gray, alpha)
    image = read_image(tmp_path / "ga.tiff")
    np.testing.assert_array_equal(image.pixels, gray)
    np.testing.assert_array_equal(image.alpha, alpha)


def test_a_sixteen_bit_rgba_tiff_stays_sixteen_bit(tmp_path):
    """A 16-bit RGBA TIFF (as OpenCV writes one: a 16-bit restoration with alpha) reads back with its 16-bit colours
    and alpha, not Pillow's 8-bit decoding of it."""
    deep = RGB.astype(np.uint16) * 251 + 3  # low bytes that 8 bits cannot hold
    alpha = (np.arange(40 * 56).reshape(40, 56) * 29 % 65536).astype(np.uint16)
    path = tmp_path / "deep.tiff"
    assert cv2.imwrite(str(path), np.dstack([deep[..., ::-1], alpha]))
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, deep)
    np.testing.assert_array_equal(image.alpha, alpha)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_avif_is_turned_as_its_rotation_and_mirror_boxes_say(tmp_path, orientation):
    """Pillow stores an AVIF's EXIF orientation as the file's own rotation and mirror boxes (irot, imir; the tag is
    dropped), which OpenCV's reader ignores: read_image turns the pixels and the alpha as Pillow shows them, and an
    output written from them (no orientation tag) shows them so."""
    alpha = (np.arange(40 * 56).reshape(40, 56) % 251).astype(np.uint8)
    path = tmp_path / "o.avif"
    pil = Image.fromarray(np.dstack([RGB, alpha]))
    exif = pil.getexif()
    exif[0x0112] = orientation
    pil.save(path, exif=exif.tobytes(), quality=100, subsampling="4:4:4")
    with Image.open(path) as stored:
        shown = np.asarray(ImageOps.exif_transpose(stored))
    image = read_image(path)
    assert image.orientation == orientation
    assert image.pixels.shape == (*shown.shape[:2], 3)
    assert np.abs(image.pixels.astype(int) - shown[..., :3]).max() <= 2  # two AVIF decoders, same picture
    np.testing.assert_array_equal(image.alpha, shown[..., 3])
    write_image(tmp_path / "out.png", image.pixels, image.alpha)
    with Image.open(tmp_path / "out.png") as written:
        np.testing.assert_array_equal(
            np.asarray(ImageOps.exif_transpose(written)), np.dstack([image.pixels, image.alpha])
        )


@pytest.mark.parametrize(
    ("mode", "transparent", "shown"),
    [("1", 1, 255), ("L", 100, 100), ("I;16", 30000, 30000), ("1", 0, 0), ("L", 0, 0), ("I;16", 0, 0)],
)
def test_a_gray_png_keeps_its_transparent_gray(tmp_path, mode, transparent, shown):
    """A gray PNG (1, 8, 16 bits) whose tRNS chunk makes one gray value transparent, which OpenCV's reader ignores:
    the pixels of that value (1 bit: white, as read) come with alpha 0, the others opaque, in the written output
    too. Black (0) is a transparent gray like any other (a keyed-out black background)."""
    values = {"1": [0, 1], "L": [0, 100, 255], "I;16": [0, 30000, 65535]}[mode]
    stored = np.array(values, np.uint16)[np.arange(32 * 48).reshape(32, 48) % len(values)]
    path = tmp_path / "key.png"
    pil = Image.fromarray(stored.astype(np.uint8).astype(bool)) if mode == "1" else Image.fromarray(stored)
    pil.convert(mode).save(path, transparency=transparent)
    image = read_image(path)
    top = np.iinfo(image.pixels.dtype).max
    assert image.alpha is not None and image.alpha.dtype == image.pixels.dtype
    np.testing.assert_array_equal(image.alpha, np.where(image.pixels == shown, 0, top))
    assert 0 < np.count_nonzero(image.alpha) < image.alpha.size
    write_image(tmp_path / "out.png", image.pixels, image.alpha)
    np.testing.assert_array_equal(read_image(tmp_path / "out.png").alpha, image.alpha)


def _writes_avif_of(bits: int) -> bool:
    try:
        return cv2.imencode(".avif", np.zeros((8, 8, 3), np.uint16), [cv2.IMWRITE_AVIF_DEPTH, bits])[0]
    except cv2.error:
        return False


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
@pytest.mark.parametrize("bits", [10, 12, 16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_10_or_12_bit_avif_is_read_as_bright_as_it_shows(tmp_path, bits, channels):
    """OpenCV returns a 10- or 12-bit AVIF's samples as stored (0–1023, 0–4095) in uint16, which the runtime takes
    for 16 bits: the picture came out nearly black. read_image scales them to 16 bits: the pixels and alpha read
    back are the picture Pillow shows (in 8 bits), and so is the 16-bit PNG written from them. A 16-bit AVIF
    (libavif 1.4: a sample transform preferred to a 12-bit primary image) is left as decoded."""
    if not _writes_avif_of(bits):
        pytest.skip(f"this OpenCV writes no {bits}-bit AVIF")
    alpha = (np.arange(40 * 56).reshape(40, 56) % 251).astype(np.uint8)
    picture = {1: RGB[..., 1], 3: RGB, 4: np.dstack([RGB, alpha])}[channels]
    stored = ((picture.astype(np.int64) * ((1 << bits) - 1) + 127) // 255).astype(np.uint16)
    bgr = stored if channels == 1 else cv2.cvtColor(stored, cv2.COLOR_RGB2BGR if channels == 3 else cv2.COLOR_RGBA2BGRA)
    path = tmp_path / "deep.avif"
    ok, encoded = cv2.imencode(".avif", bgr, [cv2.IMWRITE_AVIF_DEPTH, bits, cv2.IMWRITE_AVIF_QUALITY, 100])  # lossless
    assert ok
    path.write_bytes(encoded.tobytes())
    with Image.open(path) as shown:
        assert np.array_equal(np.asarray(shown), picture)  # Pillow decodes to 8 bits, as a viewer shows it
    image = read_image(path)
    read = image.pixels if image.alpha is None else np.dstack([image.pixels, image.alpha])
    assert read.dtype == np.uint16 and read.shape == picture.shape
    assert np.abs(read.astype(int) - picture.astype(int) * 257).max() <= 65535 // ((1 << bits) - 1) // 2 + 1
    write_image(tmp_path / "out.png", image.pixels, image.alpha)
    written = read_image(tmp_path / "out.png")
    assert written.pixels.dtype == np.uint16
    np.testing.assert_array_equal(written.pixels, image.pixels)


@pytest.mark.parametrize(
    ("magic", "maxval", "channels"),
    [(b"P5", 1023, 1), (b"P2", 4095, 1), (b"P6", 1023, 3), (b"P5", 15, 1), (b"P6", 100, 3), (b"P2", 15, 1)],
)
def test_a_pnm_of_any_maxval_is_read_as_bright_as_it_shows(tmp_path, magic, maxval, channels):
    """A PGM/PPM's samples run from 0 to its maxval; OpenCV returns them as stored (uint16 above 255, uint8 below;
    only a plain-text one below 255 is scaled), so a 10-bit PGM came out nearly black. read_image scales them to
    the full range, as Pillow (and viewers) do: 0 → 0, maxval → the top, the rest rounded in between."""
    stored = (np.arange(24 * 32 * channels).reshape(24, 32, channels).squeeze() * 7 % (maxval + 1)).astype(np.uint16)
    body = stored.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    if magic == b"P2":
        body = " ".join(map(str, stored.ravel())).encode() + b"\n"
    path = tmp_path / ("x.ppm" if channels == 3 else "x.pgm")
    path.write_bytes(magic + b"\n# a comment\n32 24\n%d\n" % maxval + body)
    image = read_image(path)
    top = 65535 if maxval > 255 else 255
    assert image.pixels.dtype == (np.uint16 if maxval > 255 else np.uint8)
    expected = np.round(stored * (top / maxval))
    assert np.abs(image.pixels.astype(int) - expected).max() <= (1 if magic == b"P2" and maxval < 255 else 0)


def _jpeg2000_of(stored: np.ndarray, bits: int) -> bytes:
    """A lossless JP2 of ``stored`` (``bits``-bit samples, RGB): OpenCV writes 16 bits only, so the samples are
    written shifted to where a ``bits``-bit decoder's level shift (2**(bits-1) instead of 2**15) puts them back,
    and the precision fields (the codestream's Ssiz, the JP2 header's bpc) are then set to ``bits``."""
    shifted = (stored.astype(np.int64) + (1 << 15) - (1 << (bits - 1))).astype(np.uint16)
    _, encoded = cv2.imencode(".jp2", shifted[..., ::-1], [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, 1000])
    jp2 = bytearray(encoded.tobytes())
    siz = jp2.index(b"\xff\x51")
    for component in range(3):
        jp2[siz + 40 + 3 * component] = bits - 1
    jp2[jp2.index(b"ihdr") + 14] = bits - 1
    return bytes(jp2)


@pytest.mark.parametrize("container", ["jp2", "j2k"])
@pytest.mark.parametrize("bits", [12, 16])
def test_a_12_bit_jpeg_2000_is_read_as_bright_as_it_shows(tmp_path, container, bits):
    """OpenCV's OpenJPEG reader returns a JPEG 2000's 9- to 15-bit samples as stored in uint16 (0–4095 for 12 bits):
    the picture came out nearly black. read_image scales them by the precision in the codestream's SIZ segment,
    in a JP2 file and in a bare codestream alike (0 → 0, 4095 → 65535); 16 bits are left as they are. (Pillow is no
    reference here: it shifts 12 bits down to 8 with rounding, and 4095 wraps to 0.)"""
    stored = (np.arange(48 * 64 * 3).reshape(48, 64, 3) * 37 % (1 << bits)).astype(np.uint16)
    jp2 = _jpeg2000_of(stored, bits)
    path = tmp_path / f"x.{container}"
    path.write_bytes(jp2 if container == "jp2" else jp2[jp2.index(b"\xff\x4f\xff\x51") :])
    image = read_image(path)
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, np.round(stored * (65535 / ((1 << bits) - 1))))


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _with_clean_aperture(avif: bytes, width: int, height: int, dx: tuple[int, int], dy: tuple[int, int]) -> bytes:
    """``avif`` as libavif writes it (ftyp, meta, mdat; a version-0 ipma of 7-bit indices, a version-0 iloc of
    4-byte offsets) with a clean aperture property (clap) of ``width``×``height`` whose centre is the fractions
    ``dx``, ``dy`` off the image's, associated with item 1 (the colour image); the items' data offsets moved by what
    the meta box grew."""
    from runtime.file_headers import iso_boxes  # reads the boxes of a bytes object as of a mapped file

    top = {kind: (start, end) for kind, start, end in iso_boxes(avif, 0, len(avif))}
    assert list(top) == [b"ftyp", b"meta", b"mdat"]
    meta_start, meta_end = top[b"meta"]
    clap = _box(b"clap", struct.pack(">IIIIiIiI", width, 1, height, 1, *dx, *dy))
    children = []
    for kind, start, end in iso_boxes(avif, meta_start + 4, meta_end):
        body = avif[start:end]
        if kind == b"iprp":
            parts = {k: body[s:e] for k, s, e in iso_boxes(body, 0, len(body))}
            index = len(list(iso_boxes(parts[b"ipco"], 0, len(parts[b"ipco"])))) + 1  # properties count from 1
            old, new = parts[b"ipma"], bytearray(parts[b"ipma"][:8])
            assert old[:4] == b"\0\0\0\0"  # version 0, flags 0: 16-bit item IDs, 7-bit indices
            pos = 8
            for _ in range(int.from_bytes(old[4:8], "big")):
                item, count = int.from_bytes(old[pos : pos + 2], "big"), old[pos + 2]
                indices = old[pos + 3 : pos + 3 + count] + (bytes([0x80 | index]) if item == 1 else b"")  # essential
                new += old[pos : pos + 2] + bytes([len(indices)]) + indices
                pos += 3 + count
            body = _box(b"ipco", parts[b"ipco"] + clap) + _box(b"ipma", bytes(new))
        children.append(_box(kind, body))
    meta = bytearray(_box(b"meta", avif[meta_start : meta_start + 4] + b"".join(children)))
    grown = len(meta) - (meta_end - meta_start + 8)
    pos = meta.index(b"iloc") + 4
    assert meta[pos : pos + 6] == b"\0\0\0\0\x44\0"  # version 0, 4-byte offsets and lengths, no base offset
    items, pos = int.from_bytes(meta[pos + 6 : pos + 8], "big"), pos + 8
    for _ in range(items):  # item ID, data reference, extent count, (offset, length) of each
        extents, pos = int.from_bytes(meta[pos + 4 : pos + 6], "big"), pos + 6
        for _ in range(extents):
            struct.pack_into(">I", meta, pos, struct.unpack_from(">I", meta, pos)[0] + grown)
            pos += 8
    return avif[: top[b"ftyp"][1]] + bytes(meta) + avif[top[b"mdat"][0] - 8 :]


@pytest.mark.parametrize(
    ("size", "dx", "dy", "window"),
    [
        ((32, 24), (-8, 1), (4, 1), (16, 8)),
        ((32, 24), (0, 1), (0, 1), (12, 16)),
        ((64, 40), (0, 1), (-4, 1), (0, 0)),  # an encoder's padding rows cut off: full width, from the top
        ((32, 24), (16, 1), (12, 1), (24, 32)),  # the bottom-right corner, touching both far edges
        ((64, 48), (0, 1), (0, 1), (0, 0)),  # the whole image
        ((32, 24), (1, 2), (0, 1), None),
        ((32, 24), (17, 1), (0, 1), None),
        ((64, 40), (0, 1), (-5, 1), None),  # one row above the top edge
        ((32, 24), (16, 1), (13, 1), None),  # one row past the bottom edge
    ],
)
def test_an_avif_is_cropped_to_its_clean_aperture(tmp_path, size, dx, dy, window):
    """An AVIF's clean aperture box (clap) crops it as viewers show it (Chromium), OpenCV's and Pillow's readers
    ignore it: read_image returns the window (``(top, left)``), alpha too, also where it touches the image's edges
    (a 1920×1088 coded frame shown as 1920×1080); an aperture that is not whole pixels inside the image leaves the
    whole image, as Chromium shows it."""
    alpha = (np.arange(48 * 64).reshape(48, 64) % 251).astype(np.uint8)
    rgba = np.dstack([data.astronaut()[:48, :64], alpha])
    _, encoded = cv2.imencode(".avif", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_AVIF_QUALITY, 100])
    path = tmp_path / "clap.avif"
    width, height = size
    path.write_bytes(_with_clean_aperture(encoded.tobytes(), width, height, dx, dy))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (48, 64, 4)  # read, and not cropped, by OpenCV
    image = read_image(path)
    top, left = window or (0, 0)
    shown = rgba[top : top + height, left : left + width] if window else rgba
    assert image.pixels.shape == (*shown.shape[:2], 3)
    assert np.abs(image.pixels.astype(int) - shown[..., :3]).max() <= 2  # lossless AVIF: YUV rounding only
    np.testing.assert_array_equal(image.alpha, shown[..., 3])


def test_an_avif_header_is_read_in_each_layout_the_format_allows():
    """The AVIF depth reader follows the boxes, not one writer's layout: a 64-bit box size, a primary item ID of 32
    bits (pitm version 1), 32-bit item IDs and 15-bit property indices (ipma version 1, flag 1: files with over 127
    properties), and the primary item's own av1C (12 bits) rather than the first in the file (another item's, 10
    bits); a derived primary item (a grid) gives its pixi's depth."""
    from runtime.file_headers import avif_bit_depth

    def full(kind: bytes, version: int, flags: int, body: bytes) -> bytes:
        return _box(kind, bytes([version]) + flags.to_bytes(3, "big") + body)

    def avif(primary: int, properties: list[bytes], associations: dict[int, list[int]]) -> bytes:
        ipma = struct.pack(">I", len(associations)) + b"".join(
            struct.pack(">IB", item, len(indices)) + b"".join(struct.pack(">H", 0x8000 | i) for i in indices)
            for item, indices in associations.items()
        )
        iprp = _box(b"iprp", _box(b"ipco", b"".join(properties)) + full(b"ipma", 1, 1, ipma))
        meta = full(b"meta", 0, 0, full(b"pitm", 1, 0, struct.pack(">I", primary)) + iprp)
        skipped = struct.pack(">I4sQ", 1, b"free", 24) + bytes(8)  # a 64-bit size
        return _box(b"ftyp", b"avif\0\0\0\0avifmif1") + skipped + meta

    av1c = {bits: _box(b"av1C", bytes([0x81, 0x00, {8: 0x00, 10: 0x40, 12: 0x60}[bits], 0])) for bits in (8, 10, 12)}
    pixi16 = full(b"pixi", 0, 0, bytes([3, 16, 16, 16]))
    assert avif_bit_depth(avif(70000, [av1c[10], av1c[12]], {1: [1], 70000: [2]})) == 12
    assert avif_bit_depth(avif(1, [av1c[10], av1c[12]], {1: [1], 70000: [2]})) == 10
    assert avif_bit_depth(avif(3, [av1c[12], pixi16], {1: [1], 2: [1], 3: [2]})) == 16
    assert avif_bit_depth(avif(9, [av1c[12]], {1: [1]})) is None  # no properties of its own: left as decoded
    assert avif_bit_depth(b"\x89PNG\r\n\x1a\n" + bytes(40)) is None


@pytest.mark.parametrize("precision", [12, 16])
def test_a_12_bit_jpeg_is_refused_as_what_it_is(tmp_path, precision):
    """OpenCV's libjpeg reader decodes 8-bit JPEGs only (a 12-bit one comes back empty; nothing is read dark): the
    line says the file is a 12-bit JPEG rather than corrupt."""
    jpeg = bytearray(write_jpeg(tmp_path / "x.jpg", RGB, 90).read_bytes())
    jpeg[jpeg.index(b"\xff\xc0") + 4] = precision  # the frame header's sample precision
    (tmp_path / "x.jpg").write_bytes(bytes(jpeg))
    with pytest.raises(ImageError) as error:
        read_image(tmp_path / "x.jpg")
    assert str(error.value) == f"{tmp_path / 'x.jpg'}: a {precision}-bit JPEG; OpenCV's reader decodes 8-bit JPEGs only"
