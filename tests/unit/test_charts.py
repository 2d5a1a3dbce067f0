"""agi_campaign.charts: SVG drawn on the server, scaled to the largest value, labelled for
screen readers (<title>, <desc>), escaped, and still an axis with "no data" when empty."""
import re
import xml.etree.ElementTree as ET

from agi_campaign import charts

NS = "{http://www.w3.org/2000/svg}"


def parse(svg):
    """The SVG as an element tree (fails on markup that is not well-formed XML)."""
    return ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def rects(svg, cls):
    return [r for r in parse(svg).iter(NS + "rect") if cls in r.get("class", "").split()]


def test_charts_bar_lengths_scale_to_the_largest_value():
    svg = charts.bar_chart("o", "Outcomes", [("answered", 10), ("busy", 5), ("lost", 0)],
                           width=480)
    widths = [float(r.get("width")) for r in rects(svg, "bar")]
    plot = 480 - charts.LABEL_W - charts.VALUE_W
    assert widths == [plot, plot / 2, 0]
    assert [r.get("class") for r in rects(svg, "bar")] == [
        "bar bar-answered", "bar bar-busy", "bar bar-lost"]
    texts = [t.text for t in parse(svg).iter(NS + "text")]
    assert texts == ["answered", "10", "busy", "5", "lost", "0"]


def test_charts_have_title_and_desc_that_state_the_figures():
    svg = charts.bar_chart("o", "Attempts by outcome", [("answered", 3), ("busy", 1)])
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "o-title o-desc"
    assert root.find(NS + "title").text == "Attempts by outcome"
    assert root.find(NS + "desc").text == "Attempts by outcome: answered 3, busy 1"
    assert root.get("id") == "o"


def test_charts_escape_labels_and_titles():
    svg = charts.bar_chart("x", "<b>&", [("<script>", 1)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert parse(svg).find(NS + "title").text == "<b>&"


def test_charts_empty_and_zero_series_say_no_data():
    for svg, desc in ((charts.bar_chart("e", "Outcomes", []), "Outcomes: no data"),
                      (charts.bar_chart("e", "Outcomes", [("busy", 0)]), "Outcomes: busy 0"),
                      (charts.column_chart("c", "Calls", []), "Calls: no data"),
                      (charts.column_chart("c", "Calls", [("09:00", 0), ("09:01", 0)]),
                       "Calls: no data")):
        root = parse(svg)
        texts = [t.text for t in root.iter(NS + "text")]
        assert "no data" in texts and "busy" not in texts     # nothing drawn over it
        assert root.find(NS + "desc").text == desc
        assert not [r for r in root.iter(NS + "rect") if float(r.get("width")) > 0
                    and float(r.get("height", 1)) > 0 and "col" in r.get("class", "")]


def test_charts_columns_scale_and_label_first_middle_last():
    points = [("09:%02d" % i, v) for i, v in enumerate([0, 2, 4, 1, 0])]
    svg = charts.column_chart("c", "Calls per minute", points, width=720, height=180)
    cols = rects(svg, "col")
    heights = [float(c.get("height")) for c in cols]
    plot_h = 180 - 22 - 8
    assert heights == [plot_h / 2, plot_h, plot_h / 4]     # zero columns are not drawn
    bottoms = {round(float(c.get("y")) + float(c.get("height")), 1) for c in cols}
    assert bottoms == {8 + plot_h}
    xs = [float(c.get("x")) for c in cols]
    assert xs == sorted(xs)
    labels = [t.text for t in parse(svg).iter(NS + "text") if t.get("y") == str(180 - 6)]
    assert labels == ["09:00", "09:02", "09:04"]
    desc = parse(svg).find(NS + "desc").text
    assert desc == "Calls per minute: 5 points, total 7 calls, peak 4 at 09:02"
    ticks = [t.text for t in parse(svg).iter(NS + "text") if t.get("class") == "tick"
             and t.get("text-anchor") == "end" and re.fullmatch(r"[\d.]+", t.text or "")]
    assert ticks[:4] == ["1", "2", "3", "4"]


def test_charts_one_point_has_one_label():
    svg = charts.column_chart("c", "Calls", [("09:00", 3)], height=150)
    labels = [t.text for t in parse(svg).iter(NS + "text") if t.get("y") == str(150 - 6)]
    assert labels == ["09:00"]


def test_charts_axis_tops_are_whole_steps_of_1_2_5():
    assert [charts.nice_top(v, 4) for v in (0, 1, 4, 5, 9, 13, 362, 1000, 1001, 90)] == [
        0, 4, 4, 8, 20, 20, 400, 1000, 2000, 100]
    svg = charts.column_chart("c", "Calls", [("a", 362), ("b", 181)], height=180)
    ticks = [t.text for t in parse(svg).iter(NS + "text") if t.get("text-anchor") == "end"]
    assert ticks == ["100", "200", "300", "400", "b"]     # "b": the last label, under the axis
    heights = [float(r.get("height")) for r in rects(svg, "col")]
    assert heights == [round(150 * 362 / 400, 1), round(150 * 181 / 400, 1)]
