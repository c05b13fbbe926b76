"""Top-1 accuracy and the confusion matrix of a validation run, as text and CSV."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["confusion_matrix", "accuracy", "format_matrix", "write_csv"]


def confusion_matrix(true: Sequence[int], pred: Sequence[int], classes: int) -> np.ndarray:
    """counts[t, p]: images of class t predicted as p."""
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (np.asarray(true, np.int64), np.asarray(pred, np.int64)), 1)
    return m


def accuracy(matrix: np.ndarray) -> float:
    """Top-1 accuracy: the diagonal over all counts (0 when empty)."""
    total = int(matrix.sum())
    return float(np.trace(matrix)) / total if total else 0.0


def format_matrix(matrix: np.ndarray, names: Sequence[str], max_full: int = 12) -> list[str]:
    """Text lines: the full matrix for few classes, else per-class recall and the worst confusions."""
    k = len(names)
    if k <= max_full:
        width = max(4, len(str(int(matrix.max(initial=0)))) + 1, *(len(n) + 1 for n in names))
        head = " " * width + "".join(f"{n[:width - 1]:>{width}}" for n in names)
        rows = [f"{n[:width - 1]:>{width}}" + "".join(f"{int(v):>{width}}" for v in row)
                for n, row in zip(names, matrix)]
        return ["rows: true class, columns: predicted", head, *rows]
    lines = ["per-class top-1 (true class: correct/total):"]
    for i, n in enumerate(names):
        total = int(matrix[i].sum())
        if total:
            lines.append(f"  {i:>3} {n}: {int(matrix[i, i])}/{total}")
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    worst = [tuple(map(int, np.unravel_index(j, off.shape))) for j in np.argsort(off, axis=None)[::-1][:5]]
    worst = [(t, p) for t, p in worst if off[t, p] > 0]
    if worst:
        lines.append("most frequent confusions: " + "; ".join(f"{names[t]} -> {names[p]} ({int(off[t, p])})"
                                                              for t, p in worst))
    return lines


def write_csv(path, matrix: np.ndarray, names: Sequence[str]) -> Path:
    """Write the matrix with class names as header row and first column."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["true \\ predicted", *names])
        for n, row in zip(names, matrix):
            w.writerow([n, *(int(v) for v in row)])
    return path
