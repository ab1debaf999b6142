"""Thumbnails: where they go, how big they are, and that they survive odd images."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from flux_batch.report.thumbnails import THUMB_SIZE, ensure_thumbnail, make_thumbnail, thumb_path_for


@pytest.mark.parametrize(
    ("image", "thumb"),
    [
        ("images/base/cat-1a2b.png", ".thumbs/base/cat-1a2b.webp"),
        ("images/edit/cat-gold-9f.jpg", ".thumbs/edit/cat-gold-9f.webp"),
        ("images/base/cat-1a2b-1.webp", ".thumbs/base/cat-1a2b-1.webp"),
        ("other/x.gif", ".thumbs/other/x.webp"),
    ],
)
def test_thumb_path_mirrors_the_image_path_under_dot_thumbs(image: str, thumb: str) -> None:
    assert thumb_path_for(image) == thumb


@pytest.mark.parametrize("bad", ["", "images/../../etc/passwd", "images/"])
def test_thumb_path_refuses_paths_that_leave_the_folder(bad: str) -> None:
    with pytest.raises(ValueError, match="not a path inside"):
        thumb_path_for(bad)


def _save(out: Path, rel: str, image: Image.Image, **kwargs: object) -> str:
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    image.save(out / rel, **kwargs)  # type: ignore[arg-type]
    return rel


def test_make_thumbnail_writes_a_small_webp_keeping_the_aspect_ratio(tmp_path: Path) -> None:
    rel = _save(tmp_path, "images/base/wide.png", Image.new("RGB", (1024, 512), (200, 40, 40)))
    thumb = make_thumbnail(tmp_path, rel)
    assert thumb == ".thumbs/base/wide.webp"
    with Image.open(tmp_path / thumb) as t:
        assert t.format == "WEBP"
        assert t.size == (THUMB_SIZE, THUMB_SIZE // 2)
        r, g, b = t.convert("RGB").getpixel((10, 10))  # type: ignore[misc]
        assert r > 150 and g < 90 and b < 90
    assert not [p for p in (tmp_path / ".thumbs/base").iterdir() if p.suffix == ".tmp"]


def test_make_thumbnail_never_enlarges(tmp_path: Path) -> None:
    rel = _save(tmp_path, "images/s/tiny.png", Image.new("RGB", (40, 30)))
    with Image.open(tmp_path / make_thumbnail(tmp_path, rel)) as t:
        assert t.size == (40, 30)


def test_make_thumbnail_applies_exif_rotation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    rel = _save(tmp_path, "images/s/phone.jpg", Image.new("RGB", (400, 200)), exif=exif)
    with Image.open(tmp_path / make_thumbnail(tmp_path, rel)) as t:
        assert t.width < t.height


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "LA", "CMYK"])
def test_make_thumbnail_handles_every_colour_mode(tmp_path: Path, mode: str) -> None:
    ext = "jpg" if mode == "CMYK" else "png"
    rel = _save(tmp_path, f"images/s/{mode}.{ext}", Image.new(mode, (300, 300)))
    with Image.open(tmp_path / make_thumbnail(tmp_path, rel)) as t:
        assert t.mode in ("RGB", "RGBA")


def test_make_thumbnail_takes_the_first_frame_of_an_animation(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (300, 300), c) for c in ((255, 0, 0), (0, 0, 255))]
    (tmp_path / "images/s").mkdir(parents=True)
    frames[0].save(tmp_path / "images/s/anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / make_thumbnail(tmp_path, "images/s/anim.gif")) as t:
        r, _, b = t.convert("RGB").getpixel((5, 5))  # type: ignore[misc]
        assert r > 200 and b < 60


def test_make_thumbnail_raises_oserror_on_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "images/s").mkdir(parents=True)
    (tmp_path / "images/s/broken.png").write_bytes(b"<html>not an image</html>")
    with pytest.raises(OSError):
        make_thumbnail(tmp_path, "images/s/broken.png")


def test_ensure_thumbnail_reuses_makes_or_gives_up(tmp_path: Path) -> None:
    rel = _save(tmp_path, "images/s/a.png", Image.new("RGB", (300, 300)))
    made = ensure_thumbnail(tmp_path, rel)
    assert made == ".thumbs/s/a.webp"
    stamp = (tmp_path / made).stat().st_mtime_ns
    assert ensure_thumbnail(tmp_path, rel) == made
    assert (tmp_path / made).stat().st_mtime_ns == stamp  # not redone
    assert ensure_thumbnail(tmp_path, "images/s/missing.png") is None
