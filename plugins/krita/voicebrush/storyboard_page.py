"""A storyboard page: where each panel and its caption go, and what the layers are called.

Plain data and arithmetic, no Qt, no Krita (krita_glue makes the layers). The page is
a grid in reading order: shot 1 at the top left, `columns` panels a row. Each panel is
the board's frame size (one pixel of the picture per pixel of the page), inside a thin
border, with its caption underneath; gutters keep panels apart.
"""

import math
import re
from collections import namedtuple
from xml.sax.saxutils import escape

from .options import Rect

DEFAULT_COLUMNS = 3
MAX_COLUMNS = 8
CAPTION_LINES = 2  # longer shot texts are cut with an ellipsis; the group's name and the board keep them whole
FONT_FAMILY = "DejaVu Sans"
ANNOTATION = "voicebrush-storyboard"  # the document annotation naming the board, so a panel can be redone

Panel = namedtuple("Panel", "index text cell frame picture caption")
"""One shot on the page: `cell` its whole grid cell, `frame` the bordered panel, `picture`
the area inside the border, `caption` the text box under the frame (all Rects)."""


class PageLayout(object):
    def __init__(self, count, columns, frame_size):
        if count < 1:
            raise ValueError("a storyboard page needs at least one panel")
        self.count = int(count)
        self.columns = max(1, min(MAX_COLUMNS, int(columns or DEFAULT_COLUMNS), self.count))
        self.rows = int(math.ceil(self.count / float(self.columns)))
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        width, height = self.frame_size
        self.border = max(2, int(round(width / 256.0)))  # thin: 2 px on a small frame, 4 on 1024
        self.gutter = max(16, int(round(width / 16.0)))
        self.margin = self.gutter
        self.font_px = max(11, int(round(width / 22.0)))
        self.line_px = int(round(self.font_px * 1.3))
        self.caption_gap = max(4, self.font_px // 2)
        self.caption_height = self.caption_gap + CAPTION_LINES * self.line_px
        self.cell_size = (width + 2 * self.border, height + 2 * self.border + self.caption_height)
        self.width = 2 * self.margin + self.columns * self.cell_size[0] + (self.columns - 1) * self.gutter
        self.height = 2 * self.margin + self.rows * self.cell_size[1] + (self.rows - 1) * self.gutter

    def panel(self, index, text=""):
        """Shot `index` (from 1)."""
        if not 1 <= index <= self.count:
            raise IndexError("no shot %d on a page of %d" % (index, self.count))
        row, column = divmod(index - 1, self.columns)
        x = self.margin + column * (self.cell_size[0] + self.gutter)
        y = self.margin + row * (self.cell_size[1] + self.gutter)
        frame_w, frame_h = self.frame_size[0] + 2 * self.border, self.frame_size[1] + 2 * self.border
        frame = Rect(x, y, frame_w, frame_h)
        picture = Rect(x + self.border, y + self.border, self.frame_size[0], self.frame_size[1])
        caption = Rect(x, y + frame_h + self.caption_gap, frame_w, CAPTION_LINES * self.line_px)
        return Panel(index, text, Rect(x, y, self.cell_size[0], self.cell_size[1]), frame, picture, caption)

    def panels(self, texts):
        return [self.panel(index, text) for index, text in enumerate(texts, 1)]

    def to_dict(self):
        return {"count": self.count, "columns": self.columns, "frame": list(self.frame_size)}

    @classmethod
    def from_dict(cls, data):
        return cls(int(data["count"]), int(data["columns"]), tuple(data["frame"]))


def frame_size(board_size):
    """(w, h) from the board's "WxH"."""
    match = re.match(r"^\s*(\d+)\s*x\s*(\d+)\s*$", str(board_size or ""))
    if not match:
        raise ValueError("not a WxH size: %r" % (board_size,))
    return int(match.group(1)), int(match.group(2))


def group_name(index, text, max_length=72):
    """The layer group of a shot: "Shot 3: a ship in the storm" (long texts cut at a word)."""
    head = "Shot %d: " % index
    words = re.sub(r"\s+", " ", text or "").strip()
    room = max_length - len(head)
    if len(words) > room:
        words = (words[:room].rsplit(" ", 1)[0].rstrip(",;:. ") or words[:room]) + "\u2026"
    return head + words


def shot_index(name):
    """The shot a group (or a layer inside one) belongs to, from its name; None if none."""
    match = re.match(r"^Shot (\d+):", name or "")
    return int(match.group(1)) if match else None


def picture_name(seed=None):
    return "Picture" if seed is None else "Picture (seed %d)" % int(seed)


def caption_lines(text, width_px, font_px, max_lines=CAPTION_LINES):
    """The caption wrapped at words to fit `width_px` (DejaVu Sans averages 0.55 em a
    character), at most `max_lines`, the last one ending in an ellipsis if cut."""
    per_line = max(8, int(width_px / (font_px * 0.58)))
    words = re.sub(r"\s+", " ", text or "").strip().split(" ")
    lines, current = [], ""
    for word in words:
        while len(word) > per_line:  # a word longer than a line is cut into pieces
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:per_line])
            word = word[per_line:]
        candidate = (current + " " + word).strip()
        if len(candidate) <= per_line:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        if len(last) + 1 > per_line:
            last = last[:per_line - 1].rsplit(" ", 1)[0] if " " in last[:per_line - 1] else last[:per_line - 1]
        lines = lines[:max_lines - 1] + [last.rstrip(",;:. ") + "\u2026"]
    return lines


def caption_svg(panel, text, layout):
    """An SVG text element for Krita's vector layer: the shot number and text, left aligned
    under the panel, so it stays editable with Krita's text tool."""
    lines = caption_lines("%d. %s" % (panel.index, text), panel.caption.width, layout.font_px)
    x = panel.caption.x + layout.border
    first_baseline = panel.caption.y + layout.font_px
    spans = "".join('<tspan x="%d" y="%d">%s</tspan>' % (x, first_baseline + i * layout.line_px, escape(line))
                    for i, line in enumerate(lines))
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">'
            '<text style="font-family:%s;font-size:%d;fill:#1a1a1a">%s</text></svg>'
            % (layout.width, layout.height, FONT_FAMILY, layout.font_px, spans))
