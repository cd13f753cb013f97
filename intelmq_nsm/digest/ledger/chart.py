"""A case's open and fixed findings over time as an SVG chart (two step lines, one per series).

Hand-made SVG from a jinja2 template with autoescaping: a plotting library would bring
far more than two polylines need, and every text in the picture (the case id, dates) is
escaped on its way in.
"""

import jinja2

WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 40, 40
COLOURS = {"open": "#c0392b", "fixed": "#1e8449"}

_TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    """<svg xmlns="http://www.w3.org/2000/svg" width="{{ width }}" height="{{ height }}" \
viewBox="0 0 {{ width }} {{ height }}" role="img" aria-labelledby="title">
<title id="title">{{ title }}</title>
<rect x="0" y="0" width="{{ width }}" height="{{ height }}" fill="#ffffff"/>
<text x="{{ left }}" y="20" font-family="sans-serif" font-size="14">{{ title }}</text>
<line x1="{{ left }}" y1="{{ bottom }}" x2="{{ right }}" y2="{{ bottom }}" stroke="#555"/>
<line x1="{{ left }}" y1="{{ top }}" x2="{{ left }}" y2="{{ bottom }}" stroke="#555"/>
{% for tick in ticks %}<text x="{{ left - 6 }}" y="{{ tick.y + 4 }}" font-family="sans-serif" font-size="11" \
text-anchor="end">{{ tick.label }}</text>
<line x1="{{ left }}" y1="{{ tick.y }}" x2="{{ right }}" y2="{{ tick.y }}" stroke="#ddd"/>
{% endfor %}{% for label in dates %}<text x="{{ label.x }}" y="{{ bottom + 16 }}" font-family="sans-serif" \
font-size="11" text-anchor="middle">{{ label.text }}</text>
{% endfor %}{% for line in lines %}<polyline fill="none" stroke="{{ line.colour }}" stroke-width="2" \
points="{{ line.points }}"><title>{{ line.name }}</title></polyline>
{% endfor %}{% for line in lines %}<text x="{{ right - 90 }}" y="{{ top + 14 + loop.index0 * 16 }}" \
font-family="sans-serif" font-size="12" fill="{{ line.colour }}">{{ line.name }}: {{ line.last }}</text>
{% endfor %}</svg>
"""
)


def case_chart(case_id: str, daily: list) -> str:
    """The SVG text of the chart of ``daily`` (``[{"date", "open", "fixed"}]``)."""
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    peak = max([1] + [max(d["open"], d["fixed"]) for d in daily])
    span = max(1, len(daily) - 1)

    def x(i: int) -> float:
        return round(LEFT + (right - LEFT) * i / span, 1)

    def y(value: int) -> float:
        return round(bottom - (bottom - TOP) * value / peak, 1)

    lines = []
    for name in ("open", "fixed"):
        points = []
        for i, d in enumerate(daily):
            if points:
                points.append(f"{x(i)},{y(daily[i - 1][name])}")  # a step: the count holds until the next day
            points.append(f"{x(i)},{y(d[name])}")
        if len(daily) == 1:
            points.append(f"{x(1)},{y(daily[0][name])}")  # one day: a level line across the chart
        lines.append(
            {
                "name": name,
                "colour": COLOURS[name],
                "points": " ".join(points),
                "last": daily[-1][name] if daily else 0,
            }
        )
    steps = 4 if peak >= 4 else peak
    ticks = [{"y": y(round(peak * k / steps)), "label": round(peak * k / steps)} for k in range(steps + 1)]
    picks = sorted({0, len(daily) // 2, len(daily) - 1}) if daily else []
    dates = [{"x": x(i), "text": daily[i]["date"]} for i in picks]
    return _TEMPLATE.render(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=right,
        top=TOP,
        bottom=bottom,
        title=f"Case {case_id}: open and fixed findings",
        ticks=ticks,
        dates=dates,
        lines=lines,
    )
