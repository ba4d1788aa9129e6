"""Figure layout: the title clears the column headers, no caption or header is cut at the figure's edge, and the
benchmark plot labels its log axis with plain numbers ("1.25x", not "1.25x10^0")."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from pan.bench.report import plot_speedups  # noqa: E402
from pan.viz.figures import save_figure  # noqa: E402


@pytest.fixture
def kept_figures(monkeypatch):
    """plt.close does nothing, so the test can measure the figure the drawing code saved; closes them at the end."""
    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    yield
    monkeypatch.undo()
    plt.close("all")


def _drawn_tick_labels(fig) -> set[int]:
    """ids of the tick labels matplotlib draws (ticks outside an axis' view limits keep labels it never draws)."""
    drawn = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if lo <= tick.get_loc() <= hi:
                    drawn.update((id(tick.label1), id(tick.label2)))
    return drawn


def _texts(fig):
    """(text, its box in pixels) for every text drawn at the figure's own dpi, and the figure's box."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    drawn = _drawn_tick_labels(fig)
    return [(t, t.get_window_extent(renderer)) for t in fig.findobj(matplotlib.text.Text)
            if t.get_visible() and t.get_text().strip() and (id(t) not in ticks or id(t) in drawn)], fig.bbox


def _inside(box, frame, slack=1.0):
    return (box.x0 >= frame.x0 - slack and box.x1 <= frame.x1 + slack and box.y0 >= frame.y0 - slack
            and box.y1 <= frame.y1 + slack)


@pytest.mark.parametrize("rows", [1, 3])
def test_attention_grid_title_clears_headers_and_captions_fit(tmp_path, kept_figures, rows):
    fig, axes = plt.subplots(rows, 4, figsize=(2.2 * 4, 2.4 * rows), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow([[0, 1], [1, 0]])
        axes[r, 0].set_xlabel("q: 6  a: blue\npred: yellow ✗", fontsize=7)
    for c in range(1, 4):
        axes[0, c].set_title(f"attention {c}", fontsize=8)
    save_figure(fig, axes, tmp_path / "grid.png", "pan-h-ctx on MREF test, a title as wide as the column headers")
    texts, frame = _texts(fig)
    title = next(box for t, box in texts if t is fig._suptitle)
    headers = [box for t, box in texts if t.get_text().startswith("attention")]
    assert all(not title.overlaps(h) for h in headers), "the title overlaps a column header"
    cut = [t.get_text() for t, box in texts if not _inside(box, frame)]
    assert cut == [], f"text outside the figure: {cut}"


def _rows(speedups, modes=("fwd",)):
    return [{"op": "progressive_attention", "shape_name": f"MREF-{k}", "shape": "", "dtype": "float32", "mode": m,
             "provider": provider, "speedup_vs_eager": s}
            for m in modes for k, v in enumerate(speedups) for provider, s in (("eager", 1.0), ("triton", v))]


@pytest.mark.parametrize("speedups", [[1.1, 1.25], [0.5, 12.0, 300.0]], ids=["narrow", "wide"])
def test_bench_plot_header_fits_and_axis_is_plain(tmp_path, kept_figures, speedups):
    header = ("# NVIDIA H100 80GB HBM3 | CUDA 13.0 | torch 2.14.1+cu130 | triton 3.8.0 | git 072fd2346a46+dirty | "
              "2026-12-05T11:40:10+00:00 | tf32 matmul=True cudnn=True | cuda ext=True")
    plot_speedups(_rows(speedups), tmp_path / "plot.png", title=header)
    fig = plt.gcf()
    texts, frame = _texts(fig)
    cut = [t.get_text()[:40] for t, box in texts if not _inside(box, frame)]
    assert cut == [], f"text outside the figure: {cut}"
    drawn = _drawn_tick_labels(fig)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True)
              if t.get_text() and id(t) in drawn]
    assert labels and all("10^" not in s and "times" not in s for s in labels), labels
    assert all(s.endswith("x") for s in labels), labels


def test_data_preview_captions_fit_in_one_row(tmp_path, kept_figures):
    from pan.cli.main import main

    out = tmp_path / "grid.png"
    assert main(["data", "preview", "--dataset", "mref", "--num-images", "3", "--cols", "10", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    texts, frame = _texts(plt.gcf())
    captions = [t.get_text() for t, _ in texts if t.get_text().startswith("query:")]
    assert len(captions) == 3
    cut = [t.get_text() for t, box in texts if not _inside(box, frame)]
    assert cut == [], f"text outside the figure: {cut}"
