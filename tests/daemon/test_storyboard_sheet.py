"""The contact sheet: panels where the layout says, each holding its picture, captions that
never leave their panel, and A4 landscape PDF pages read back with pypdf."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import pypdf
from PIL import Image, ImageFont

from voicebrush_daemon.storyboards import sheet
from voicebrush_daemon.storyboards.sheet import CAPTION_LINES, LINE, PAGE, PAPER, PENDING, Panel, choose_grid, layout, render_pdf, render_png, wrap

COLOURS = [(200, 40, 40), (40, 180, 60), (40, 60, 200), (210, 200, 40), (40, 200, 200), (180, 60, 180), (120, 80, 30)]
LONG = "the keeper climbs the spiral stairs of the lighthouse with a lantern while the storm breaks the windows " * 4


def solid_pictures(tmp_path, frame, count):
    paths = []
    for index in range(count):
        path = tmp_path / f"shot{index + 1}.png"
        Image.new("RGB", frame, COLOURS[index % len(COLOURS)]).save(path)
        paths.append(path)
    return paths


def boxes_overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("frame", [(1024, 576), (768, 768), (512, 768), (344, 192), (2048, 64)])
def test_layout_is_a_grid_in_reading_order_within_the_page(frame):
    pages = layout(30, frame, paged=True)
    per_page = choose_grid(frame).per_page
    assert len(pages) == math.ceil(30 / per_page)
    assert [cell.index for page in pages for cell in page.cells] == list(range(1, 31))
    for page in pages:
        assert page.size == PAGE
        cells = page.cells
        for cell in cells:
            left, top, right, bottom = cell.frame
            assert 0 <= left and right <= page.size[0] and 0 <= top and cell.caption[3] <= page.size[1]
            # the picture keeps the frame's aspect inside the border
            width, height = cell.picture[2] - cell.picture[0], cell.picture[3] - cell.picture[1]
            assert abs(width / height - frame[0] / frame[1]) < 0.03 * frame[0] / frame[1]
        for a in cells:
            for b in cells:
                if a is not b:
                    assert not boxes_overlap(a.frame, b.frame) and not boxes_overlap(a.caption, b.caption)
                    assert not boxes_overlap(a.frame, b.caption)
        # reading order: left to right, then top to bottom
        for a, b in zip(cells, cells[1:]):
            assert (b.frame[1] > a.frame[1]) or (b.frame[1] == a.frame[1] and b.frame[0] > a.frame[0])


def test_sheet_png_pixels_panels_where_the_layout_says_each_holding_its_picture(tmp_path):
    frame = (1024, 576)
    pictures = solid_pictures(tmp_path, frame, 7)
    panels = [Panel(i + 1, f"shot {i + 1}: {LONG}", pictures[i], "done") for i in range(6)]
    panels.append(Panel(7, "a ship in the storm", None, "generating"))
    png = render_png(panels, frame, "Storyboard, 7 shots")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    (page,) = layout(7, frame, paged=False)
    assert image.size == page.size
    pixels = np.asarray(image)
    drawn = np.zeros(pixels.shape[:2], dtype=bool)  # where anything may be drawn
    drawn[: sheet.MARGIN + sheet.HEADER, :] = True  # the heading band
    for cell in page.cells:
        left, top, right, bottom = cell.picture
        inside = pixels[top:bottom, left:right].reshape(-1, 3)
        expected = COLOURS[cell.index - 1] if cell.index <= 6 else PENDING
        # every pixel of the picture box is the picture (or, unfinished, the placeholder)
        share = (inside == expected).all(axis=1).mean()
        assert share == 1.0 if cell.index <= 6 else share > 0.97, (cell.index, share)
        # the frame's border is drawn dark on all four sides
        fl, ft, fr, fb = cell.frame
        for x, y in ((fl, (ft + fb) // 2), (fr - 1, (ft + fb) // 2), ((fl + fr) // 2, ft), ((fl + fr) // 2, fb - 1)):
            assert max(pixels[y, x]) < 80, (cell.index, x, y, pixels[y, x])
        drawn[ft:fb, fl:fr] = True
        cl, ct, cr, cb = cell.caption
        caption = pixels[ct:cb, cl:cr]
        assert (caption != PAPER).any(), f"no caption under panel {cell.index}"
        drawn[ct:cb, cl:cr] = True
    # Nothing outside the heading, the frames and the caption boxes: long captions are
    # wrapped and cut, never overflowing into gutters, margins or the next panel.
    stray = (pixels != PAPER).any(axis=2) & ~drawn
    assert not stray.any(), f"{stray.sum()} pixels drawn outside the layout, e.g. at {np.argwhere(stray)[:3].tolist()}"


def test_captions_wrap_within_the_width_and_end_in_an_ellipsis():
    face = sheet.font()
    lines = wrap(LONG, face, 300, CAPTION_LINES, first_indent=40)
    assert len(lines) == CAPTION_LINES and lines[-1].endswith("…")
    assert face.getlength(lines[0]) <= 260 and all(face.getlength(line) <= 300 for line in lines)
    assert wrap("a ship", face, 300, 3) == ["a ship"]
    broken = wrap("Supercalifragilisticexpialidocious" * 4, face, 120, 10)
    assert len(broken) > 1 and all(face.getlength(line) <= 120 for line in broken)
    assert LINE * CAPTION_LINES + sheet.CAPTION_GAP == sheet.CAPTION


def test_the_sheet_is_drawn_in_dejavu():
    face = sheet.font()
    assert isinstance(face, ImageFont.FreeTypeFont)
    assert face.getname()[0] == "DejaVu Sans"
    assert sheet.font(bold=True).getname() == ("DejaVu Sans", "Bold")


@pytest.mark.parametrize("count,frame", [(1, (1024, 576)), (12, (1024, 576)), (13, (1024, 576)), (40, (768, 768))])
def test_pdf_has_a4_landscape_pages_as_many_as_needed(tmp_path, count, frame):
    pictures = solid_pictures(tmp_path, frame, min(count, 7))
    panels = [Panel(i + 1, f"shot {i + 1}", pictures[i % len(pictures)], "done") for i in range(count)]
    pdf = pypdf.PdfReader(io.BytesIO(render_pdf(panels, frame, "Storyboard")))
    expected = math.ceil(count / choose_grid(frame).per_page)
    assert len(pdf.pages) == expected
    for page in pdf.pages:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert abs(width - 841.89) < 1.5 and abs(height - 595.28) < 1.5  # A4 landscape in points
    # The first page's picture, read back out of the PDF, has panel 1 where the layout says.
    picture = pdf.pages[0].images[0].image.convert("RGB")
    assert picture.size == PAGE
    cell = layout(count, frame, paged=True)[0].cells[0]
    centre = ((cell.picture[0] + cell.picture[2]) // 2, (cell.picture[1] + cell.picture[3]) // 2)
    assert np.abs(np.subtract(picture.getpixel(centre), COLOURS[0])).max() < 12  # JPEG inside the PDF


def test_a_missing_picture_file_is_a_placeholder_not_an_error(tmp_path):
    panels = [Panel(1, "gone", tmp_path / "deleted.png", "done"), Panel(2, "waiting", None, "queued")]
    image = Image.open(io.BytesIO(render_png(panels, (512, 512), "Storyboard"))).convert("RGB")
    for cell in layout(2, (512, 512), paged=False)[0].cells:
        assert image.getpixel((cell.picture[0] + 2, cell.picture[1] + 2)) == PENDING
