"""Agreement between two labellings from one contingency table: ARI, NMI, homogeneity, completeness.

scikit-learn's ``adjusted_rand_score``, ``normalized_mutual_info_score`` and
``homogeneity_completeness_v_measure`` each validate both labellings, sort them
(``np.unique``) and build a sparse contingency matrix, per call. A run scores every model
against ``--evaluate-against`` (200,000 validation rows on a 1M-row table: ~0.35 s per model
for the three calls) and every stability refit pair by ARI. Here the labellings are
non-negative integer codes, the table is one ``np.bincount``, and every score follows
scikit-learn's own formulas on it (integer pair counts for the ARI, the same entropy and
mutual-information expressions, the same special cases), so the values are scikit-learn's
(``tests/test_agreement.py`` compares them exactly).
"""

from __future__ import annotations

from math import log

import numpy as np


class Contingency:
    """Counts of rows per (true class, cluster) pair of two labellings of the same rows.

    ``truth`` and ``labels``: integer arrays of equal length, values >= 0 (callers shift
    noise, -1, to a code of its own). Classes and clusters without rows are dropped, so the
    table is scikit-learn's ``contingency_matrix`` (rows and columns in sorted label order).
    """

    def __init__(self, truth: np.ndarray, labels: np.ndarray):
        truth = np.asarray(truth, np.int64)
        labels = np.asarray(labels, np.int64)
        if truth.shape != labels.shape or truth.ndim != 1:
            raise ValueError(f"labellings must be 1-D of equal length, got {truth.shape} and {labels.shape}")
        if truth.size and (truth.min() < 0 or labels.min() < 0):
            raise ValueError("labellings must be non-negative integer codes")
        self.n_rows = int(truth.shape[0])
        n_truth = int(truth.max()) + 1 if truth.size else 0
        n_labels = int(labels.max()) + 1 if labels.size else 0
        table = np.bincount(truth * n_labels + labels, minlength=n_truth * n_labels).reshape(n_truth, n_labels)
        self.table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
        self.class_sizes = self.table.sum(axis=1)
        self.cluster_sizes = self.table.sum(axis=0)

    def adjusted_rand(self) -> float:
        """Adjusted Rand index (scikit-learn's pair-confusion form, in Python integers)."""
        n = self.n_rows
        sum_squares = int((self.table**2).sum())
        both = sum_squares - n
        only_truth = int((self.table @ self.cluster_sizes).sum()) - sum_squares
        only_labels = int((self.table.T @ self.class_sizes).sum()) - sum_squares
        neither = n * n - only_truth - only_labels - sum_squares
        tn, fp, fn, tp = neither, only_truth, only_labels, both
        if fn == 0 and fp == 0:
            return 1.0
        return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))

    def mutual_information(self) -> float:
        """Mutual information in nats (scikit-learn's ``mutual_info_score`` on the table)."""
        pi, pj = self.class_sizes, self.cluster_sizes
        if pi.size == 1 or pj.size == 1:
            return 0.0
        nzx, nzy = np.nonzero(self.table)
        nz_val = self.table[nzx, nzy]
        total = self.table.sum()
        log_contingency_nm = np.log(nz_val)
        contingency_nm = nz_val / total
        outer = pi.take(nzx).astype(np.int64, copy=False) * pj.take(nzy).astype(np.int64, copy=False)
        log_outer = -np.log(outer) + log(pi.sum()) + log(pj.sum())
        mi = contingency_nm * (log_contingency_nm - log(total)) + contingency_nm * log_outer
        mi = np.where(np.abs(mi) < np.finfo(mi.dtype).eps, 0.0, mi)
        return float(np.clip(mi.sum(), 0.0, None))

    def scores(self) -> dict:
        """``{"ari", "nmi", "homogeneity", "completeness"}`` (NMI with the arithmetic mean, scikit-learn's default)."""
        if self.n_rows == 0:
            return {"ari": 1.0, "nmi": 1.0, "homogeneity": 1.0, "completeness": 1.0}
        h_true, h_pred = _entropy(self.class_sizes), _entropy(self.cluster_sizes)
        mi = self.mutual_information()
        if self.class_sizes.size == self.cluster_sizes.size == 1:
            nmi = 1.0
        elif mi == 0:
            nmi = 0.0
        else:
            nmi = float(mi / np.mean([h_true, h_pred]))
        return {
            "ari": self.adjusted_rand(),
            "nmi": nmi,
            "homogeneity": float(mi / h_true if h_true else 1.0),
            "completeness": float(mi / h_pred if h_pred else 1.0),
        }


def _entropy(counts: np.ndarray) -> float:
    """Entropy in nats of a labelling with these class sizes (scikit-learn's ``_entropy``)."""
    pi = np.asarray(counts, np.float64)
    if pi.size == 1:
        return 0.0
    pi_sum = np.sum(pi)
    return float(-np.sum((pi / pi_sum) * (np.log(pi) - log(pi_sum))))


def codes(labels: np.ndarray) -> np.ndarray:
    """Labels of any kind (noise -1 included) as codes >= 0 in the same order: integers shifted by their
    minimum, or ranked (``np.unique``) when they are not integers or too sparse for a table over their range."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iub" and labels.size:
        low, high = int(labels.min()), int(labels.max())
        if high - low <= 2 * labels.size + 1024:
            return labels.astype(np.int64) - low
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def adjusted_rand(truth: np.ndarray, labels: np.ndarray) -> float:
    """Adjusted Rand index of two labellings (scikit-learn's value; integer labels, -1 allowed)."""
    return Contingency(codes(truth), codes(labels)).adjusted_rand()
