"""The benchmark history (``benches/history.jsonl``) as one self-contained HTML page.

Top: each workload's judged ratio to its in-run reference, one line per workload, with
its spread over rounds as error bars: the figure that stays comparable from one noisy
run or machine to the next, and the one ``make bench-check`` compares. Bottom: the
same workloads' CPU throughput (M symbol-bars/s), what a user feels but only comparable
between runs of one machine at similar load. Hovering shows commit, date, machine and
load. ``python benches/track.py chart [--out target/bench-history.html]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _hover(rec: dict[str, Any]) -> str:
    m = rec["machine"]
    return (
        f"{rec['commit'][:10]}{' (dirty)' if rec['dirty'] else ''} {rec['subject'][:60]}<br>"
        f"{rec['date']}<br>{m['cpu']} x{m['cores']}, load {m['load_before'][0]:.1f}"
        f"{'<br>' + rec['note'] if rec['note'] else ''}"
    )


def _label(k: int, rec: dict[str, Any]) -> str:
    """The x-axis place of the ``k``-th record (file order): number, date and commit."""
    return f"#{k} {rec['date'][:16].replace('T', ' ')}<br>{rec['commit'][:7]}"


def figure(history: list[dict[str, Any]]) -> Any:
    import plotly.express as px
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            "cost per symbol-bar / reference cost per element (lower is faster)",
            "throughput, M symbol-bars/s of CPU time (this machine's load included)",
        ),
    )
    history = [rec for rec in history if not rec["slowdown"]]
    labels = [_label(k, rec) for k, rec in enumerate(history, 1)]
    names = list(dict.fromkeys(n for rec in history for n in rec["ratios"]))
    palette = px.colors.qualitative.Plotly
    for k, name in enumerate(names):
        color = palette[k % len(palette)]
        kept = [k for k, rec in enumerate(history) if name in rec["ratios"]]
        recs = [history[k] for k in kept]
        x = [labels[k] for k in kept]
        hover = [_hover(rec) for rec in recs]
        ratio = [rec["ratios"][name] for rec in recs]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[r["median"] for r in ratio],
                error_y={"array": [r["median"] * r["spread"] for r in ratio], "visible": True},
                mode="lines+markers",
                line={"color": color},
                name=f"{name} / {ratio[-1]['reference']}",
                legendgroup=name,
                hovertext=hover,
                hovertemplate="%{y:.3g}<br>%{hovertext}<extra>" + name + "</extra>",
            ),
            row=1,
            col=1,
        )
        probes = [rec["probes"][name] for rec in recs]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[p["elements"] / p["cpu_s"]["median"] / 1e6 for p in probes],
                mode="lines+markers",
                line={"color": color},
                name=name,
                legendgroup=name,
                showlegend=False,
                hovertext=hover,
                hovertemplate="%{y:.3g} M/s<br>%{hovertext}<extra>" + name + "</extra>",
            ),
            row=2,
            col=1,
        )
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_layout(
        title=f"tickstep benchmark history ({len(history)} records)",
        height=900,
        hovermode="closest",
        template="plotly_white",
    )
    return fig


def write(history: list[dict[str, Any]], out: Path) -> Path:
    """Draw ``history`` into ``out`` (plotly.js embedded: the page works offline)."""
    if not history:
        raise SystemExit("the history is empty: run `make bench-record` first")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure(history).write_html(out, include_plotlyjs=True, full_html=True)
    return out
