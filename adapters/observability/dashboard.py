"""The dashboard: one self-contained HTML page of the loop's state, charts drawn by Vega-Lite.

The charts are Altair (Vega-Lite) specifications rendered to SVG on the server by ``vl-convert`` (Vega's
own renderer, shipped in the wheel), so the page needs no JavaScript and no network: it is the same
file whether the app serves it at ``/dashboard`` or ``clicktune report --html FILE`` writes it for
someone who serves nothing. Everything it shows comes from :class:`StateReader`, the reader behind
``/metrics``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import altair as alt
import vl_convert

from clicktune.adapters.observability.state import (
    CLICK_THROUGH_AT,
    ClickThrough,
    LiveVersion,
    PhaseState,
    StateReader,
)
from clicktune.adapters.registry import VersionInfo

DAYS = 30
WIDTH = 560


@dataclass(frozen=True)
class DashboardData:
    """Everything the page shows, read once."""

    alias: str
    generated_at: datetime
    live: LiveVersion | None
    versions: list[VersionInfo]
    phase: PhaseState | None
    click_through_by_day: list[tuple[str, ClickThrough]]
    per_day: list[tuple[str, int, int]]

    @classmethod
    def read(cls, reader: StateReader, days: int = DAYS) -> DashboardData:
        now = datetime.now(timezone.utc)
        since = now - timedelta(days=days)
        return cls(reader.alias, now, reader.live(), reader.versions(), reader.latest_phase(),
                   reader.click_through_by_day(since), reader.per_day(since))


def render_dashboard(data: DashboardData) -> str:
    """The page as one HTML string (charts inline as SVG)."""
    e = html.escape
    sections = [
        _section("Live version", _live(data)),
        _section("Candidates", _candidates(data)),
        _section("Challenger phase" + (f": {e(data.phase.challenger)} vs {e(data.phase.champion)} "
                                       f"({e(data.phase.status)})" if data.phase else ""), _phase(data.phase)),
        _section("Click-through by rank and version, per day (searches not interleaved)", _ctr(data)),
        _section("Searches and clicks per day", _traffic(data)),
    ]
    return (
        # an empty icon: a browser would otherwise ask the server for /favicon.ico (a 404 on most apps)
        "<!doctype html><html lang=en><head><meta charset=utf-8><link rel=icon href='data:,'>"
        f"<title>clicktune: {e(data.alias)}</title><style>{_CSS}</style></head><body>"
        f"<h1>clicktune <span class=alias>{e(data.alias)}</span></h1>"
        f"<p class=muted>Generated {data.generated_at:%Y-%m-%d %H:%M} UTC; last {DAYS} days.</p>"
        + "".join(sections) + "</body></html>"
    )


_CSS = (
    "body{font:14px/1.45 system-ui,sans-serif;max-width:72rem;margin:1.5rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:1.8rem;border-bottom:1px solid #ddd}"
    ".alias{color:#4c78a8}.muted{color:#777}table{border-collapse:collapse;width:100%}"
    "td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}"
    ".live{font-weight:600;color:#2a7a2a}.bad{color:#b22}.good{color:#2a7a2a}"
    ".lineage span{display:inline-block;padding:.15rem .5rem;margin:.1rem;border:1px solid #ccc;border-radius:.3rem}"
)


def _section(title: str, body: str) -> str:
    """``title`` is HTML already (its variable parts escaped by the caller)."""
    return f"<section><h2>{title}</h2>{body}</section>"


def _empty(what: str) -> str:
    return f"<p class='muted empty'>{html.escape(what)}</p>"


def _live(data: DashboardData) -> str:
    if data.live is None:
        return _empty("No live version yet: the first store or ClicktuneEmbeddings makes v0001 from the base model.")
    live = data.live
    chain = [*live.history, live.version]
    lineage = " &rarr; ".join(f"<span class={'live' if v == live.version else 'old'}>{html.escape(v)}</span>"
                              for v in chain)
    return (f"<p><b class=live id=live-version>{html.escape(live.version)}</b>, live since "
            f"{live.promoted_at:%Y-%m-%d %H:%M} UTC.</p><p class=lineage>Lineage: {lineage}</p>")


def _decision(info: VersionInfo, kind: str) -> dict[str, Any] | None:
    return next((d for d in reversed(info.decisions) if d.get("kind") == kind), None)


def _candidates(data: DashboardData) -> str:
    if not data.versions:
        return _empty("No versions registered.")
    rows = []
    for info in reversed(data.versions):
        offline, phase = _decision(info, "offline"), _decision(info, "challenger")
        if offline is None:
            check = "<span class=muted>none (base model)</span>" if info.parent is None else "<span class=muted>-</span>"
        else:
            mark = ("good", "passed") if offline.get("passed") else ("bad", "failed")
            check = f"<span class={mark[0]}>{mark[1]}</span> {html.escape(str(offline.get('reason', '')))}"
        if data.phase is not None and data.phase.challenger == info.version and data.phase.status == "running":
            verdict = f"running: z {data.phase.z:.2f} ({html.escape(data.phase.reason)})"
        elif phase is not None:
            cls = "good" if phase.get("outcome") == "promoted" else "bad"
            verdict = (f"<span class={cls}>{html.escape(str(phase.get('outcome')))}</span> "
                       f"{html.escape(str(phase.get('reason', '')))}")
        else:
            verdict = "<span class=muted>-</span>"
        rows.append(f"<tr><td class={'live' if info.status == 'live' else ''}>{html.escape(info.version)}</td>"
                    f"<td>{html.escape(info.parent or '-')}</td><td>{info.created_at:%Y-%m-%d %H:%M}</td>"
                    f"<td>{html.escape(info.status)}</td><td>{check}</td><td>{verdict}</td></tr>")
    return ("<table id=candidates><tr><th>Version</th><th>Parent</th><th>Created (UTC)</th><th>Status</th>"
            "<th>Offline check</th><th>Challenger phase</th></tr>" + "".join(rows) + "</table>")


def _svg(chart: alt.TopLevelMixin) -> str:
    """Vega-Lite to SVG with Vega's own renderer, in process (no browser, no network)."""
    return f"<figure class=chart>{vl_convert.vegalite_to_svg(chart.to_dict())}</figure>"


def _phase(phase: PhaseState | None) -> str:
    if phase is None:
        return _empty("No challenger phase yet: a candidate that passes the offline check opens one.")
    tally = (f"<p id=phase-tally>{phase.wins} wins, {phase.losses} losses, {phase.ties} ties; z = {phase.z:.2f} "
             f"over {phase.wins + phase.losses} decided searches. {html.escape(phase.reason)}</p>")
    if not phase.schedule:
        return tally
    last = phase.schedule[-1][0]
    bounds = [{"decided": n, "z": b, "line": "promote at or above"} for n, b in phase.schedule]
    bounds += [{"decided": n, "z": -b, "line": "drop at or below"} for n, b in phase.schedule if n != last]
    points = [{"decided": look.decided, "z": look.z, "what": "z at a look"} for look in phase.reached]
    if phase.wins + phase.losses:
        points.append({"decided": phase.wins + phase.losses, "z": phase.z, "what": "z now (all decided searches)"})
    # log 2: the looks double, so they fall evenly; ticks at the looks only
    looks = [n for n, _ in phase.schedule]
    x = alt.X("decided:Q", title="decided searches (wins + losses)",
              scale=alt.Scale(type="log", base=2, domain=[looks[0] / 1.3, max(looks[-1], points[-1]["decided"]
                                                                                if points else 0) * 1.3]),
              axis=alt.Axis(values=looks, format="d"))
    lines = alt.Chart(alt.Data(values=bounds)).mark_line(point=True, strokeDash=[4, 3]).encode(
        x=x, y=alt.Y("z:Q", title="sign-test z"), color=alt.Color("line:N", title="boundary",
                                                                   scale=alt.Scale(range=["#e45756", "#54a24b"])))
    layers: list[alt.Chart] = [lines]
    if points:
        layers.append(alt.Chart(alt.Data(values=points)).mark_point(filled=True, size=90).encode(
            x=x, y="z:Q", shape=alt.Shape("what:N", title=None), color=alt.value("#4c78a8")))
    chart = alt.layer(*layers).resolve_scale(color="independent", shape="independent").properties(
        width=WIDTH, height=240)
    return tally + _svg(chart)


def _ctr(data: DashboardData) -> str:
    rows = [{"day": day, "version": ct.model_version, "at": f"click within top {at}",
             "ctr": clicked / ct.searches, "searches": ct.searches}
            for day, ct in data.click_through_by_day if ct.searches
            for at, clicked in zip(CLICK_THROUGH_AT, ct.clicked_within, strict=True)]
    if not rows:
        return _empty("No searches logged in this window.")
    chart = alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
        x=alt.X("day:T", title=None, timeUnit="utcyearmonthdate"),
        y=alt.Y("ctr:Q", title="click-through", axis=alt.Axis(format="%")),
        color=alt.Color("version:N", title="model version"),
    ).properties(width=WIDTH // 3, height=200).facet(
        column=alt.Column("at:N", title=None, sort=[f"click within top {at}" for at in CLICK_THROUGH_AT]))
    return _svg(chart)


def _traffic(data: DashboardData) -> str:
    rows = [{"day": day, "count": n, "what": what}
            for day, searches, clicks in data.per_day for what, n in (("searches", searches), ("clicks", clicks))]
    if not rows:
        return _empty("No searches logged in this window.")
    chart = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X("day:O", title=None, timeUnit="utcyearmonthdate"),
        xOffset="what:N", y=alt.Y("count:Q", title="per day"),
        color=alt.Color("what:N", title=None, scale=alt.Scale(range=["#4c78a8", "#f58518"])),
    ).properties(width=min(WIDTH, 70 * len(data.per_day)), height=200)  # bars no wider than a few days' worth
    return _svg(chart)
