"""The contact sheet: a board's panels in reading order, numbered, the shot text under each.

`sheet.pdf` is A4 landscape pages, as many as the panels need; `sheet.png` is the same
layout as one tall page. layout() says where everything goes (the tests read it back
against the pixels); render_png()/render_pdf() draw it with Pillow, in DejaVu Sans
(Debian's fonts-dejavu-core, or wherever the system keeps it; Pillow's own font if it
has none). A caption is wrapped to its panel's width and cut with an ellipsis after
CAPTION_LINES lines, so no text ever runs outside its panel.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DPI = 150
PAGE = (1754, 1240)  # A4 landscape (297 x 210 mm) at DPI
MARGIN = 60
HEADER = 50  # the band above the panels with the board's line and the page number
GUTTER = 28  # between panels, across and down
BORDER = 3
FONT_SIZE = 20
LINE = 26  # caption line height
CAPTION_LINES = 3
CAPTION_GAP = 8  # between a panel's frame and its caption
CAPTION = CAPTION_GAP + CAPTION_LINES * LINE
MAX_COLUMNS, MAX_ROWS = 6, 8
MIN_SHEET_WIDTH = 900  # a PNG of one or two panels still has room for its heading
MIN_PICTURE_AREA = 60_000  # px at DPI, about 5.5 x 3.1 cm at 16:9: smaller is hard to read on paper

PAPER, INK, FRAME, PENDING, MUTED = (255, 255, 255), (20, 20, 20), (34, 34, 34), (236, 236, 236), (128, 128, 128)
STATUS_WORDS = {"queued": "waiting", "transcribing": "waiting", "generating": "drawing", "failed": "failed", "cancelled": "cancelled"}


@dataclass(frozen=True)
class Panel:
    index: int  # the shot's number, from 1
    text: str  # the caption
    picture: Path | None  # the finished PNG, or None while it is not there
    status: str  # the shot's job status


@dataclass(frozen=True)
class Cell:
    index: int
    frame: tuple[int, int, int, int]  # the border's outer box (left, top, right, bottom), half-open as Image.crop
    picture: tuple[int, int, int, int]  # inside the border: where the picture goes
    caption: tuple[int, int, int, int]  # the number and the wrapped text


@dataclass(frozen=True)
class Page:
    size: tuple[int, int]
    number: int  # from 1
    count: int
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Grid:
    columns: int
    rows: int  # per A4 page
    panel: tuple[int, int]  # the frame's outer width and height

    @property
    def per_page(self) -> int:
        return self.columns * self.rows


def choose_grid(frame: tuple[int, int]) -> Grid:
    """The grid that fits the most panels on an A4 page while each picture keeps at least
    MIN_PICTURE_AREA (bigger panels on a tie). The picture keeps the frame's aspect."""
    aspect = frame[0] / frame[1]
    usable_w, usable_h = PAGE[0] - 2 * MARGIN, PAGE[1] - 2 * MARGIN - HEADER
    best, best_key = None, None
    for columns in range(1, MAX_COLUMNS + 1):
        for rows in range(1, MAX_ROWS + 1):
            inner_w = (usable_w - (columns - 1) * GUTTER) // columns - 2 * BORDER
            inner_h = (usable_h - (rows - 1) * GUTTER) // rows - CAPTION - 2 * BORDER
            if inner_w < 1 or inner_h < 1:
                continue
            if inner_w / aspect > inner_h:  # the rows' height limits it
                inner_w = max(1, round(inner_h * aspect))
            else:
                inner_h = max(1, round(inner_w / aspect))
            area = inner_w * inner_h
            key = (area >= MIN_PICTURE_AREA, columns * rows if area >= MIN_PICTURE_AREA else 0, area)
            if best_key is None or key > best_key:
                best_key = key
                best = Grid(columns, rows, (inner_w + 2 * BORDER, inner_h + 2 * BORDER))
    return best


def layout(count: int, frame: tuple[int, int], paged: bool) -> list[Page]:
    """Where each of `count` panels goes: A4 pages (paged) or one page as tall as needed."""
    grid = choose_grid(frame)
    per_page = grid.per_page if paged else max(1, count)
    page_count = max(1, math.ceil(count / per_page))
    width, height = grid.panel
    # One page as tall as needed is also only as wide as its panels need (a narrow board
    # of three panels is not a strip on a wide page); an A4 page centres its grid.
    columns = grid.columns if paged else max(1, min(grid.columns, count))
    grid_width = columns * width + (columns - 1) * GUTTER
    page_width = PAGE[0] if paged else max(MIN_SHEET_WIDTH, grid_width + 2 * MARGIN)
    left = (page_width - grid_width) // 2
    pages = []
    for page_index in range(page_count):
        indexes = range(page_index * per_page + 1, min(count, (page_index + 1) * per_page) + 1)
        rows = grid.rows if paged else max(1, math.ceil(len(indexes) / columns))
        size = PAGE if paged else (page_width, 2 * MARGIN + HEADER + rows * (height + CAPTION) + (rows - 1) * GUTTER)
        cells = []
        for slot, index in enumerate(indexes):
            row, column = divmod(slot, columns)
            x = left + column * (width + GUTTER)
            y = MARGIN + HEADER + row * (height + CAPTION + GUTTER)
            frame_box = (x, y, x + width, y + height)
            cells.append(Cell(
                index=index,
                frame=frame_box,
                picture=(x + BORDER, y + BORDER, x + width - BORDER, y + height - BORDER),
                caption=(x, y + height + CAPTION_GAP, x + width, y + height + CAPTION),
            ))
        pages.append(Page(size, page_index + 1, page_count, tuple(cells)))
    return pages


# ---- drawing -------------------------------------------------------------------


@lru_cache(maxsize=8)
def font(bold: bool = False, size: int = FONT_SIZE) -> ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for candidate in (f"/usr/share/fonts/truetype/dejavu/{name}", name):
        try:
            # A bare name is looked up in the system's font folders (Linux, macOS, Windows).
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def wrap(text: str, face, width: int, max_lines: int, first_indent: int = 0) -> list[str]:
    """Lines of `text` no wider than `width` pixels (the first `first_indent` narrower);
    at most `max_lines`, the last ending in an ellipsis when text was left out."""
    words = text.split()
    lines: list[str] = []
    current = ""

    def room() -> int:
        return width - (first_indent if not lines else 0)

    while words:
        word = words[0]
        candidate = f"{current} {word}" if current else word
        if face.getlength(candidate) <= room():
            current = candidate
            words.pop(0)
            continue
        if not current:  # one word wider than the line: break it
            cut = max(1, _fit(word, face, room()))
            current, words[0] = word[:cut], word[cut:]
        lines.append(current)
        current = ""
        if len(lines) == max_lines:
            break
    if current and len(lines) < max_lines:
        lines.append(current)
        current = ""
    if words or current:
        last = lines[-1] if lines else ""
        limit = width - first_indent if len(lines) == 1 else width
        while last and face.getlength(last + "…") > limit:
            last = last[:-1].rstrip()
        lines[-1:] = [last + "…"]
    return lines


def _fit(text: str, face, width: int) -> int:
    """How many leading characters of text fit in width."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if face.getlength(text[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _draw_page(page: Page, panels: dict[int, Panel], heading: str) -> Image.Image:
    image = Image.new("RGB", page.size, PAPER)
    draw = ImageDraw.Draw(image)
    regular, bold, small = font(), font(bold=True), font(size=FONT_SIZE - 2)
    page_label = f"page {page.number} of {page.count}" if page.count > 1 else ""
    label_width = int(bold.getlength(page_label)) if page_label else 0
    title = wrap(heading, bold, page.size[0] - 2 * MARGIN - label_width - GUTTER, 1)
    draw.text((MARGIN, MARGIN), title[0] if title else "", font=bold, fill=INK)
    if page_label:
        draw.text((page.size[0] - MARGIN - label_width, MARGIN), page_label, font=bold, fill=INK)
    for cell in page.cells:
        panel = panels[cell.index]
        _draw_picture(image, draw, cell, panel, small)
        draw.rectangle(_inclusive(cell.frame), outline=FRAME, width=BORDER)
        number = f"{panel.index}"
        indent = int(bold.getlength(number + "  "))
        left, top, right, _ = cell.caption
        lines = wrap(panel.text, regular, right - left, CAPTION_LINES, first_indent=indent)
        draw.text((left, top), number, font=bold, fill=INK)
        for row, line in enumerate(lines):
            draw.text((left + (indent if row == 0 else 0), top + row * LINE), line, font=regular, fill=INK)
    return image


def _draw_picture(image: Image.Image, draw: ImageDraw.ImageDraw, cell: Cell, panel: Panel, face) -> None:
    left, top, right, bottom = cell.picture
    box = (right - left, bottom - top)
    picture = None
    if panel.picture is not None:
        try:
            with Image.open(panel.picture) as opened:
                picture = opened.convert("RGB")
        except OSError:
            picture = None  # gone or unreadable: shown as missing, the sheet still renders
    if picture is None:
        draw.rectangle(_inclusive(cell.picture), fill=PENDING)
        word = STATUS_WORDS.get(panel.status, "missing")
        width = face.getlength(word)
        draw.text((left + (box[0] - width) / 2, top + box[1] / 2 - FONT_SIZE / 2), word, font=face, fill=MUTED)
        return
    if abs(picture.width / picture.height - box[0] / box[1]) < 0.02:
        # reducing_gap: a cheap box reduction first, then Lanczos (several times faster for
        # a 1024-wide panel, and no visible difference at this size).
        image.paste(picture.resize(box, Image.Resampling.LANCZOS, reducing_gap=3.0), (left, top))
        return
    # A picture of another shape (a redo at another size): whole, centred, never cropped.
    draw.rectangle(_inclusive(cell.picture), fill=PENDING)
    picture.thumbnail(box, Image.Resampling.LANCZOS)
    image.paste(picture, (left + (box[0] - picture.width) // 2, top + (box[1] - picture.height) // 2))


def _inclusive(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    # Boxes here are half-open, as Image.crop takes them; ImageDraw includes the last pixel.
    left, top, right, bottom = box
    return left, top, right - 1, bottom - 1


def render_pages(panels: list[Panel], frame: tuple[int, int], heading: str, paged: bool) -> list[Image.Image]:
    by_index = {panel.index: panel for panel in panels}
    ordered = sorted(by_index)
    assert ordered == list(range(1, len(ordered) + 1)), "panels are numbered 1..N"
    return [_draw_page(page, by_index, heading) for page in layout(len(panels), frame, paged)]


def render_png(panels: list[Panel], frame: tuple[int, int], heading: str = "Storyboard") -> bytes:
    (page,) = render_pages(panels, frame, heading, paged=False)
    out = io.BytesIO()
    # compress_level 3: about half the time of the default for a few percent more bytes
    # (pictures, not flat art, fill most of a sheet).
    page.save(out, format="PNG", compress_level=3, dpi=(DPI, DPI))
    return out.getvalue()


def render_pdf(panels: list[Panel], frame: tuple[int, int], heading: str = "Storyboard") -> bytes:
    pages = render_pages(panels, frame, heading, paged=True)
    out = io.BytesIO()
    pages[0].save(out, format="PDF", save_all=True, append_images=pages[1:], resolution=DPI, quality=90, title=heading[:200])
    return out.getvalue()
