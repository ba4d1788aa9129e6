"""The paper's Table 1 (colour accuracy % / TPR %), docs/design.md, The paper's Table 1, and the table printer."""

from __future__ import annotations

PAPER_TABLE1 = {  # model: {dataset: (accuracy %, TPR %)}
    "uniform": {"mref": (20.00, 2.34), "mdist": (20.00, 2.35), "mbg": (20.00, 2.39)},
    "stn-s": {"mref": (39.10, 0.94), "mdist": (38.32, 0.52), "mbg": (32.27, 0.74)},
    "stn-m": {"mref": (93.89, 0.66), "mdist": (85.09, 0.74), "mbg": (52.25, 0.65)},
    "san": {"mref": (82.94, 13.83), "mdist": (75.73, 12.82), "mbg": (53.77, 6.92)},
    "han": {"mref": (81.84, 13.95), "mdist": (78.49, 13.81), "mbg": (55.84, 7.64)},
    "pan-s": {"mref": (95.92, 44.25), "mdist": (91.65, 52.85), "mbg": (69.46, 32.07)},
    "pan-h": {"mref": (95.32, 62.31), "mdist": (90.46, 52.07), "mbg": (72.50, 38.32)},
    "pan-s-ctx": {"mref": (98.51, 60.45), "mdist": (96.02, 59.60), "mbg": (81.01, 43.87)},
    "pan-h-ctx": {"mref": (98.53, 62.36), "mdist": (95.82, 61.39), "mbg": (84.62, 51.49)},
}
DATASETS = ("mref", "mdist", "mbg")


def format_table(ours: dict[tuple[str, str], dict]) -> str:
    """Markdown table: for each model and dataset, 'ours acc / TPR (paper acc / TPR)'; '—' where not run.

    ours maps (model, dataset) -> an evaluation dict with "accuracy" and "tpr" as fractions.
    """
    from pan.models import PAPER_NAMES

    header = "| model | " + " | ".join(f"{d.upper()} ours acc / TPR % (paper)" for d in DATASETS) + " |"
    lines = [header, "|---|" + "---|" * len(DATASETS)]
    for model, per_dataset in PAPER_TABLE1.items():
        cells = []
        for d in DATASETS:
            p_acc, p_tpr = per_dataset[d]
            result = ours.get((model, d))
            mine = "—" if result is None else f"{100 * result['accuracy']:.2f} / {100 * result['tpr']:.2f}"
            cells.append(f"{mine} ({p_acc:.2f} / {p_tpr:.2f})")
        lines.append(f"| {PAPER_NAMES[model]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
