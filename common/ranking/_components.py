"""Which models can be ranked: the strongly connected "beats-or-ties" component (where the MLE
exists), the reasons the others are left out, and the replicates that have no MLE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse import csgraph

from common.ranking.counts import PairCounts
from common.ranking.scale import FloatArray

if TYPE_CHECKING:
    from common.ranking._likelihood import Problem


@dataclass(frozen=True)
class Components:
    main: NDArray[np.bool_]
    reasons: dict[int, str]


def beats_or_ties(counts: PairCounts) -> sparse.csr_array:
    """Directed graph with i -> j when i won or tied against j at least once."""
    fwd = (counts.wins + counts.ties) > 0
    back = (counts.losses + counts.ties) > 0
    rows = np.concatenate([counts.first[fwd], counts.second[back]])
    cols = np.concatenate([counts.second[fwd], counts.first[back]])
    m = counts.n_models
    return sparse.csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(m, m))


def components(counts: PairCounts, models: Sequence[str]) -> Components:
    """The largest strongly connected component (where the MLE exists) and why others are out."""
    m = counts.n_models
    graph = beats_or_ties(counts)
    _, label = csgraph.connected_components(graph, directed=True, connection="strong")
    size = np.bincount(label, minlength=m)
    same = label[counts.first] == label[counts.second]
    inner_votes = np.bincount(
        label[counts.first[same]],
        weights=(counts.wins + counts.ties + counts.losses)[same],
        minlength=m,
    )
    # Largest component; ties broken by votes inside it, then by its alphabetically first model
    # (``models`` is in alphabetical order).
    first_name: dict[int, str] = {}
    for i, name in enumerate(models):
        first_name.setdefault(int(label[i]), name)
    best = min(first_name, key=lambda c: (-size[c], -inner_votes[c], first_name[c]))
    main = (label == best) & (size[best] >= 2)
    reasons: dict[int, str] = {}
    has_out = np.diff(graph.indptr) > 0
    has_in = np.bincount(graph.indices, minlength=m) > 0
    if main.any():
        start = int(np.flatnonzero(main)[0])
        below = np.zeros(m, dtype=bool)
        below[csgraph.breadth_first_order(graph, start, return_predecessors=False)] = True
        above = np.zeros(m, dtype=bool)
        transposed = graph.T.tocsr()
        above[csgraph.breadth_first_order(transposed, start, return_predecessors=False)] = True
    for i in map(int, np.flatnonzero(~main)):
        if counts.vote_count[i] == 0:
            reasons[i] = "no votes"
        elif not has_in[i]:
            reasons[i] = "never lost"
        elif not has_out[i]:
            reasons[i] = "never won"
        elif not main.any():
            reasons[i] = "no group of models both won and lost against each other"
        elif below[i] and not above[i]:
            reasons[i] = "never won against the ranked models"
        elif above[i] and not below[i]:
            reasons[i] = "never lost against the ranked models"
        else:
            reasons[i] = "not connected to the main comparison graph"
    return Components(main=main, reasons=reasons)


def separable_replicates(pb: Problem, s: FloatArray, n: FloatArray) -> NDArray[np.bool_]:
    """Replicates whose beats-or-ties graph is not strongly connected (no MLE)."""
    lost = n - s
    full_s, full_lost = pb.score, pb.total - pb.score
    candidates = np.flatnonzero(
        ((s <= 0) & (full_s > 0)).any(axis=1) | ((lost <= 0) & (full_lost > 0)).any(axis=1)
    )
    out = np.zeros(len(s), dtype=bool)
    for b in candidates:
        fwd, back = s[b] > 0, lost[b] > 0
        rows = np.concatenate([pb.first[fwd], pb.second[back]])
        cols = np.concatenate([pb.second[fwd], pb.first[back]])
        graph = sparse.csr_array(
            (np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(pb.m, pb.m)
        )
        k, _ = csgraph.connected_components(graph, directed=True, connection="strong")
        out[b] = k > 1
    return out
