"""Yinyang bound kernels for exact Lloyd iterations on the CPU (compiled with numba).

Ding et al., "Yinyang K-Means: A Drop-In Replacement of the Classic K-Means with Consistent
Speedup" (ICML 2015). The centers are split into ``t`` groups of GROUP_WIDTH (contiguous
columns here, padded with columns that never win). Every row keeps an upper bound on the
distance to its center and, for each group, a lower bound on the distance to the group's
other centers. When the centers move by
``drift``, the upper bound grows by its center's drift and each group bound shrinks by the
group's largest drift; a row whose upper bound stays below every group bound keeps its
center without computing a distance. Otherwise the exact distance to its center tightens
the upper bound, and only the groups whose bound is below the best distance so far are
scanned. The assignment is the one a full Lloyd pass would give (bounds only skip work);
only the rows that change center update the per-cluster sums.

The bounds are Euclidean distances (not squared): the triangle inequality applies to them.
"""

from __future__ import annotations

import numba
import numpy as np

GROUP_WIDTH = 16  # centers per group (a multiple of 4: the scan computes four dot products at a time)
FAR = np.float32(3.0e38)  # larger than any distance; finite, so fast-math comparisons stay exact
# fast-math without the no-NaN / no-Inf assumptions: lets numba vectorise the distance sums
FAST_MATH = {"reassoc", "contract", "arcp", "nsz", "afn"}


def _bounds_from_scores_impl(scores, bias, x_sqnorm, labels, upper, lower):  # pragma: no cover
    """Bounds from a (rows x columns) score chunk ``-2 c.x`` with ``bias = ||c||^2`` (FAR for
    padding columns) and ``x_sqnorm = ||x||^2``, all in the same shifted coordinates."""
    n = scores.shape[0]
    t = lower.shape[1]
    for i in range(n):
        best = FAR
        best_label = 0
        best_group = 0
        second_in_best_group = FAR
        for g in range(t):
            first = FAR
            second = FAR
            first_label = g * GROUP_WIDTH
            for j in range(g * GROUP_WIDTH, (g + 1) * GROUP_WIDTH):
                value = scores[i, j] + bias[j]
                if value < first:
                    second = first
                    first = value
                    first_label = j
                elif value < second:
                    second = value
            lower[i, g] = first
            if first < best:
                best = first
                best_label = first_label
                best_group = g
                second_in_best_group = second
        lower[i, best_group] = second_in_best_group
        norm = x_sqnorm[i]
        for g in range(t):
            lower[i, g] = np.sqrt(max(lower[i, g] + norm, 0.0)) if lower[i, g] < FAR else FAR
        labels[i] = best_label
        upper[i] = np.sqrt(max(best + norm, 0.0))


def _accumulate_impl(x, labels, counts, sums):  # pragma: no cover - compiled
    n, d = x.shape
    for i in range(n):
        label = labels[i]
        counts[label] += 1
        for q in range(d):
            sums[label, q] += x[i, q]


def _distance(x, i, centers, j):  # pragma: no cover - compiled
    total = np.float32(0.0)
    for q in range(x.shape[1]):
        diff = x[i, q] - centers[j, q]
        total += diff * diff
    return np.sqrt(total)


def _bounded_step_impl(
    x, x_sqnorm, shift, centers, minus_two, center_sqnorm, drift, group_drift, labels, upper, lower,
    counts_delta, sums_delta,
):  # pragma: no cover - compiled
    """One Lloyd assignment with Yinyang filtering; returns how many groups were scanned.

    Group ``g`` is the center columns ``g * GROUP_WIDTH`` to ``(g + 1) * GROUP_WIDTH``
    (padding columns have ``center_sqnorm = FAR``, so they never win). ``x_sqnorm`` holds
    ``||x - shift||^2``, ``minus_two`` is ``-2 (centers - shift)`` and ``center_sqnorm``
    ``||centers - shift||^2``: a scanned group's scores ``||c||^2 - 2 x.c`` are dot products
    over the features (vectorised), four centers at a time.
    """
    n, d = x.shape
    t = lower.shape[1]
    scores = np.empty(GROUP_WIDTH, np.float32)
    shifted = np.empty(d, np.float32)
    group_first = np.empty(t, np.float32)
    group_second = np.empty(t, np.float32)
    scanned = np.zeros(t, np.bool_)
    group_scans = 0
    for i in range(n):
        current = labels[i]
        bound = upper[i] + drift[current]
        global_lower = FAR
        for g in range(t):
            value = lower[i, g] - group_drift[g]
            lower[i, g] = value
            global_lower = min(global_lower, value)
        if bound <= global_lower:
            upper[i] = bound
            continue
        own = _distance(x, i, centers, current)
        if own <= global_lower:
            upper[i] = own
            continue
        for q in range(d):
            shifted[q] = x[i, q] - shift[q]
        norm = x_sqnorm[i]
        own_score = own * own - norm  # the scan compares scores; the current center keeps its exact distance
        best = own
        best_score = own_score
        best_label = current
        for g in range(t):
            scanned[g] = lower[i, g] < best
            if not scanned[g]:
                continue
            group_scans += 1
            begin = g * GROUP_WIDTH
            for j in range(0, GROUP_WIDTH, 4):  # four dot products at a time
                c = begin + j
                s0, s1, s2, s3 = center_sqnorm[c], center_sqnorm[c + 1], center_sqnorm[c + 2], center_sqnorm[c + 3]
                for q in range(d):
                    value = shifted[q]
                    s0 += value * minus_two[c, q]
                    s1 += value * minus_two[c + 1, q]
                    s2 += value * minus_two[c + 2, q]
                    s3 += value * minus_two[c + 3, q]
                scores[j], scores[j + 1], scores[j + 2], scores[j + 3] = s0, s1, s2, s3
            if begin <= current < begin + GROUP_WIDTH:
                scores[current - begin] = own_score
            first = FAR
            for j in range(GROUP_WIDTH):
                first = min(first, scores[j])
            first_at = 0
            for j in range(GROUP_WIDTH):
                if scores[j] == first:
                    first_at = j
                    break
            second = FAR
            for j in range(GROUP_WIDTH):
                second = min(second, scores[j] if j != first_at else FAR)
            if first < best_score:
                best_score = first
                best_label = begin + first_at
            group_first[g] = first
            group_second[g] = second
        if best_label != current:
            best = np.sqrt(max(best_score + norm, np.float32(0.0)))
        best_group = best_label // GROUP_WIDTH
        old_group = current // GROUP_WIDTH
        for g in range(t):
            if scanned[g]:
                value = group_second[g] if g == best_group else group_first[g]
                lower[i, g] = np.sqrt(max(value + norm, np.float32(0.0))) if value < FAR else FAR
                scanned[g] = False
            elif g == old_group and best_label != current:  # the old center joins its group's bound
                lower[i, g] = min(lower[i, g], own)
        if best_label != current:
            counts_delta[current] -= 1
            counts_delta[best_label] += 1
            for q in range(d):
                sums_delta[current, q] -= x[i, q]
                sums_delta[best_label, q] += x[i, q]
            labels[i] = best_label
        upper[i] = best
    return group_scans


_jit = numba.njit(nogil=True, cache=True, fastmath=FAST_MATH)
bounds_from_scores = _jit(_bounds_from_scores_impl)
accumulate = numba.njit(nogil=True, cache=True)(_accumulate_impl)
_distance = numba.njit(inline="always", fastmath=FAST_MATH)(_distance)
bounded_step = _jit(_bounded_step_impl)
