"""Charts drawn on the server as SVG text (no I/O, no script): the dashboard's outcome breakdown
and calls per minute.

Each chart is one ``<svg role="img">`` labelled by its ``<title>`` and ``<desc>`` (the desc
states the figures in words, so a screen reader gets the data, not the shapes), sized by its
viewBox (it scales to its container's width), coloured by CSS classes (agi_campaign/static/
style.css). Every text is escaped. Values scale to the largest value (a bar of the largest
value spans the plot); an empty or all-zero series draws the axes and says "no data".
"""
import math
from html import escape

BAR_H = 22
LABEL_W = 110
VALUE_W = 60


def _svg(ident, width, height, title, desc, body):
    return ('<svg id="%s" class="chart" viewBox="0 0 %d %d" role="img" '
            'aria-labelledby="%s-title %s-desc" preserveAspectRatio="xMinYMin meet">'
            '<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>%s</svg>'
            % (escape(ident), width, height, escape(ident), escape(ident), escape(ident),
               escape(title), escape(ident), escape(desc), "".join(body)))


def _number(value):
    return ("%d" % value) if float(value).is_integer() else ("%.1f" % value)


def nice_top(value, ticks):
    """The axis maximum for a largest count ``value``: ``ticks`` steps of 1, 2 or 5 x 10^k,
    or 2.5 x 10^k from 25 up (at least 1), so every grid line is a whole number; 0 for 0."""
    if value <= 0:
        return 0
    raw = value / ticks
    if raw <= 1:
        return ticks
    scale = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 2.5, 5, 10) if scale >= 10 else (1, 2, 5, 10)
    return int(next(m * scale for m in steps if m * scale >= raw) * ticks)


def bar_chart(ident, title, items, width=480):
    """Horizontal bars, one a ``(label, value)`` of ``items`` (values >= 0), with the label
    left and the value right of each bar; bar ``i`` has the class ``bar bar-<label>``. With
    no value above 0 it draws only "no data"."""
    items = list(items)
    height = max(1, len(items)) * BAR_H + 8
    plot = width - LABEL_W - VALUE_W
    top = max((v for _, v in items), default=0)
    desc = ", ".join("%s %s" % (label, _number(v)) for label, v in items) or "no data"
    body = []
    if top <= 0:
        body.append('<text class="empty" x="%d" y="%d">no data</text>' % (LABEL_W, 20))
        return _svg(ident, width, BAR_H + 8, title, "%s: %s" % (title, desc), body)
    for i, (label, value) in enumerate(items):
        y = 4 + i * BAR_H
        length = plot * value / top
        body.append('<text class="label" x="%d" y="%d" text-anchor="end">%s</text>'
                    % (LABEL_W - 6, y + 15, escape(str(label))))
        body.append('<rect class="bar bar-%s" x="%d" y="%d" width="%.1f" height="%d">'
                    '<title>%s: %s</title></rect>'
                    % (escape(str(label)), LABEL_W, y + 2, length, BAR_H - 6,
                       escape(str(label)), _number(value)))
        body.append('<text class="value" x="%.1f" y="%d">%s</text>'
                    % (LABEL_W + length + 4, y + 15, _number(value)))
    return _svg(ident, width, height, title, "%s: %s" % (title, desc), body)


def column_chart(ident, title, points, width=400, height=150, ticks=4, unit="calls"):
    """Columns over time, one a ``(label, value)`` of ``points`` in order, the y axis from 0
    to ``nice_top`` of the largest value with ``ticks`` grid lines, the first, middle and last
    labels under the axis. The desc gives the total, the peak and its label."""
    points = list(points)
    left, bottom, top_pad = 36, 22, 8
    plot_w, plot_h = width - left - 4, height - bottom - top_pad
    top = nice_top(max((v for _, v in points), default=0), ticks)
    body = ['<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>'
            % (left, top_pad + plot_h, left + plot_w, top_pad + plot_h)]
    if top <= 0:
        desc = "no data"
        body.append('<text class="empty" x="%d" y="%d">no data</text>'
                    % (left + 8, top_pad + plot_h // 2))
    else:
        peak = max(points, key=lambda p: p[1])
        # grid lines at whole multiples of 1, 2 or 5 x 10^k: the axis reaches nice_top
        desc = "%d points, total %s %s, peak %s at %s" % (
            len(points), _number(sum(v for _, v in points)), unit, _number(peak[1]), peak[0])
        for k in range(1, ticks + 1):
            value = top * k / ticks
            y = top_pad + plot_h - plot_h * k / ticks
            body.append('<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>'
                        % (left, y, left + plot_w, y))
            body.append('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>'
                        % (left - 4, y + 4, _number(round(value, 1))))
    step = plot_w / max(1, len(points))
    for i, (label, value) in enumerate(points):
        h = 0 if top <= 0 else plot_h * value / top
        if h > 0:
            body.append('<rect class="col" x="%.1f" y="%.1f" width="%.1f" height="%.1f">'
                        '<title>%s: %s</title></rect>'
                        % (left + i * step, top_pad + plot_h - h, max(step - 1, 0.5), h,
                           escape(str(label)), _number(value)))
    if points:
        marks = sorted({0, len(points) // 2, len(points) - 1})
        anchors = {1: ("start",), 2: ("start", "end")}.get(len(marks), ("start", "middle", "end"))
        for i, anchor in zip(marks, anchors):
            body.append('<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s</text>'
                        % (left + (i + 0.5) * step, height - 6, anchor,
                           escape(str(points[i][0]))))
    return _svg(ident, width, height, title, "%s: %s" % (title, desc), body)
