"""Label-map decoding, validation and encoding, and the errors users see."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sdk import labels as L
from sdk.errors import LabelError
from sdk.palettes import get_palette


def test_index_grayscale_and_palette_pngs_decode_to_the_same_ids(tmp_path):
    ids = np.arange(35, dtype=np.uint8).repeat(4).reshape(10, 14)
    pal = get_palette("cityscapes", 35)
    p = Image.fromarray(ids, "P")
    p.putpalette(sum(pal, []))
    p.save(tmp_path / "index.png")
    Image.fromarray(ids, "L").save(tmp_path / "gray.png")
    assert np.array_equal(L.read_ids(tmp_path / "index.png"), ids)
    assert np.array_equal(L.read_ids(tmp_path / "gray.png"), ids)
    # RGB decodes through the palette; shared colours decode to the lowest id
    rgb = L.read_ids(Image.open(tmp_path / "index.png").convert("RGB"), palette=pal)
    expected = np.array([min(j for j in range(35) if pal[j] == pal[i]) for i in range(35)])[ids]
    assert np.array_equal(rgb, expected)


def test_rgb_colour_outside_palette_is_named():
    img = np.zeros((4, 4, 3), np.uint8)
    img[2, 3] = (1, 2, 3)
    with pytest.raises(LabelError, match=r"pixel at \(2, 3\) has colour \(1, 2, 3\)"):
        L.read_ids(Image.fromarray(img, "RGB"), palette=[[0, 0, 0]])


def test_out_of_range_id_names_value_position_and_range():
    ids = np.zeros((20, 20), np.int64)
    ids[10, 10] = 200
    with pytest.raises(LabelError, match=r"label contains id 200 at \(10, 10\); this model takes ids 0..34"):
        L.check_ids(ids, 35)
    ids[10, 10] = -1
    with pytest.raises(LabelError, match="id -1"):
        L.check_ids(ids, 35)


@pytest.mark.parametrize("bad, message", [
    (np.full((4, 4), 1.5), "non-integer"),
    (np.full((4, 4), np.nan), "non-integer"),
    (np.zeros((2, 3, 4, 4), np.int64), "shape"),
    (np.zeros((4,), np.int64), "shape"),
    (np.zeros((0, 4), np.int64), "empty"),
    ("does/not/exist.png", "does not exist"),
    (".", "is a folder, not an image file"),
    (b"", "is empty"),
    (3.0, "must be a PNG path"),
])
def test_bad_label_inputs(bad, message):
    with pytest.raises(LabelError, match=message):
        L.read_ids(bad)


def test_integral_floats_are_accepted():
    ids = L.read_ids(np.full((3, 3), 4.0))
    assert ids.dtype.kind == "i" and (ids == 4).all()


def test_files_keep_their_depth():
    """8-bit maps decode to uint8, 16-bit ones to uint16: no wider copy of a full-size map."""
    import io

    for arr in (np.full((4, 6), 7, np.uint8), np.full((4, 6), 26001, np.uint16)):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        got = L.read_ids(buf.getvalue())
        assert got.dtype == arr.dtype and np.array_equal(got, arr)


@pytest.mark.parametrize("mode", ["L", "P", "I", "I;16", "RGB"])
def test_nearest_resize_picks_pils_pixels(mode):
    """resize_nearest on the values equals PIL's NEAREST resize of the image in mode 'I' (what the
    official code's 32-bit maps get), for 8-bit, palette, 32-bit, 16-bit and RGB maps alike; PIL's
    own resize of an 'I;16' image would pick other pixels."""
    rng = np.random.default_rng(0)
    for (h, w), (oh, ow) in [((427, 640), (256, 256)), ((1024, 2048), (128, 256)), ((100, 300), (333, 77))]:
        ids = rng.integers(0, 200, (h, w))
        want = np.asarray(Image.fromarray(ids.astype(np.int32), "I").resize((ow, oh), Image.NEAREST))
        arr = ids.astype(np.uint16) * 300 if mode == "I;16" else ids.astype(np.int32 if mode == "I" else np.uint8)
        if mode == "RGB":
            arr = np.stack([arr, arr, arr], -1)
        img = Image.fromarray(arr) if mode in ("I;16", "RGB") else Image.fromarray(arr, mode)
        got = L.resize_nearest(np.asarray(img), (oh, ow))
        got = got[..., 0] if mode == "RGB" else got // 300 if mode == "I;16" else got
        assert got.dtype == np.asarray(img).dtype and np.array_equal(got, want), (mode, h, w)


def test_header_bounds_before_decoding(tmp_path):
    """A small file that claims huge dimensions is refused from its header, naming the limit;
    a JPEG label is refused as lossy."""
    import zlib

    def png_header_only(h: int, w: int) -> bytes:  # a valid PNG of one compressed all-zero image
        import struct

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        raw = zlib.compress(b"\0" * 64)  # PIL never decodes past the header here
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", raw) + chunk(b"IEND", b""))

    for h, w in ((8192, 16384), (12000, 12000), (60000, 60000)):
        with pytest.raises(LabelError, match=f"{L.MAX_PIXELS:,} pixels"):
            L.read_ids(png_header_only(h, w))
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(tmp_path / "map.jpg")
    with pytest.raises(LabelError, match="JPEG file: lossy compression"):
        L.read_ids(tmp_path / "map.jpg")


def test_size_error_says_how_to_resize():
    with pytest.raises(LabelError, match=r"300x400 \(HxW\); this model takes 256x512.*resize_ids"):
        L.check_size(np.zeros((300, 400), np.int64), (256, 512))
    assert L.resize_ids(np.eye(4, dtype=np.int64), (8, 8)).shape == (8, 8)


def test_instance_edges_match_spade_definition():
    inst = np.array([[[5, 5, 5, 7],
                      [5, 5, 5, 7],
                      [5, 5, 5, 5]]])
    # a pixel is an edge when its left/right or up/down neighbour differs (both sides marked)
    expected = np.array([[0, 0, 1, 1],
                         [0, 0, 1, 1],
                         [0, 0, 0, 1]], np.uint8)
    edges = L.instance_edges(inst)
    assert edges.dtype == np.uint8 and np.array_equal(edges[0], expected)


def test_to_image_maps_range():
    x = np.stack([np.full((2, 2), -1.0), np.zeros((2, 2)), np.ones((2, 2))])
    arr = np.asarray(L.to_image(x))
    assert arr[0, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("mode", ["L", "P", "I;16", "RGB", "RGBA", "1"])
def test_files_resize_row_by_row_to_the_same_pixels(mode):
    """A file is resized by reading only the rows nearest sampling picks: the same pixels as
    resizing its whole decoded array, in its own dtype."""
    import io

    rng = np.random.default_rng(1)
    ids = rng.integers(0, 2 if mode == "1" else 200, (427, 640))
    if mode == "I;16":
        img = Image.fromarray((ids * 300).astype(np.uint16))
    elif mode in ("RGB", "RGBA"):
        img = Image.fromarray(np.stack([ids] * (3 if mode == "RGB" else 4), -1).astype(np.uint8), mode)
    else:
        img = Image.fromarray(ids.astype(np.uint8), "L").convert(mode) if mode == "1" else \
            Image.fromarray(ids.astype(np.uint8), mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    whole = L.MapSource(buf.getvalue()).values()
    for size in ((256, 256), (128, 192), (900, 1280)):
        got = L.MapSource(buf.getvalue()).values(size)
        assert got.dtype == whole.dtype and np.array_equal(got, L.resize_nearest(whole, size)), (mode, size)
