"""Which models can be ranked: the strongly connected "beats-or-ties" component (where the MLE
exists), the reasons the others are left out, and the replicates that have no MLE.

Graphs are dense boolean adjacency matrices (``adj[..., i, j]``: i beat or tied j at least once) and
searches are breadth-first over all nodes of a frontier at once, batched over replicates: an arena
has at most a few hundred models, and the bootstrap has to check hundreds of replicates per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from common.ranking.counts import PairCounts
from common.ranking.scale import FloatArray, IntArray

if TYPE_CHECKING:
    from common.ranking._likelihood import Problem

BoolArray = NDArray[np.bool_]
# Replicates searched at once in ``separable_replicates``: about this many adjacency entries.
_SEARCH_CELLS = 2**22


@dataclass(frozen=True)
class Components:
    main: NDArray[np.bool_]
    reasons: dict[int, str]


def beats_or_ties(counts: PairCounts) -> BoolArray:
    """Adjacency (m, m) of the directed graph with i -> j when i won or tied against j."""
    return _adjacency(
        counts.n_models,
        counts.first,
        counts.second,
        (counts.wins + counts.ties) > 0,
        (counts.losses + counts.ties) > 0,
    )


def _adjacency(
    m: int, first: IntArray, second: IntArray, fwd: BoolArray, back: BoolArray
) -> BoolArray:
    """Adjacency (..., m, m) with first -> second where ``fwd`` and second -> first where ``back``
    (``fwd``/``back``: (..., pairs))."""
    adj = np.zeros((*fwd.shape[:-1], m * m), dtype=bool)
    adj[..., first * m + second] = fwd
    adj[..., second * m + first] = back
    return adj.reshape(*fwd.shape[:-1], m, m)


def reachable(adj: BoolArray, seen: BoolArray) -> BoolArray:
    """The nodes reachable from ``seen`` (..., m), itself included, along ``adj`` (..., m, m)."""
    frontier = seen
    while True:
        step = np.any(frontier[..., :, None] & adj, axis=-2)
        step &= ~seen
        if not step.any():
            return seen
        seen = seen | step
        frontier = step


def strong_components(adj: BoolArray) -> IntArray:
    """Label of each node's strongly connected component: its smallest member."""
    m = len(adj)
    label = np.full(m, -1, dtype=np.int64)
    # A node with no edge out or none in is on no cycle: a component of its own, found unsearched.
    alone = ~adj.any(axis=1) | ~adj.any(axis=0)
    label[alone] = np.flatnonzero(alone)
    for v in range(m):
        if label[v] < 0:
            start = np.zeros(m, dtype=bool)
            start[v] = True
            label[reachable(adj, start) & reachable(adj.T, start)] = v
    return label


def strongly_connected(adj: BoolArray) -> BoolArray:
    """Whether each graph of ``adj`` (graphs, m, m) is strongly connected: node 0 reaches every
    node and every node reaches node 0."""
    start = np.zeros(adj.shape[:-1], dtype=bool)
    start[:, 0] = True
    out = np.all(reachable(adj, start), axis=-1)
    if out.any():
        out[out] = np.all(reachable(adj[out].transpose(0, 2, 1), start[out]), axis=-1)
    return out


def components(counts: PairCounts, models: Sequence[str]) -> Components:
    """The largest strongly connected component (where the MLE exists) and why others are out."""
    m = counts.n_models
    graph = beats_or_ties(counts)
    label = strong_components(graph)
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
    has_out = np.count_nonzero(graph, axis=1) > 0
    has_in = np.count_nonzero(graph, axis=0) > 0
    if main.any():
        start = np.zeros(m, dtype=bool)
        start[np.flatnonzero(main)[0]] = True
        below = reachable(graph, start)
        above = reachable(graph.T, start)
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


def separable_replicates(pb: Problem, s: FloatArray, n: FloatArray) -> BoolArray:
    """Replicates whose beats-or-ties graph is not strongly connected (no MLE).

    The full-data graph is strongly connected, so only a replicate that lost one of its edges needs
    a search; a model left without a win-or-tie or without a loss-or-tie settles it unsearched.
    """
    fwd, back = s > 0, (n - s) > 0
    full_fwd, full_back = pb.score > 0, (pb.total - pb.score) > 0
    out = np.zeros(len(s), dtype=bool)
    candidates = np.flatnonzero((full_fwd & ~fwd).any(axis=1) | (full_back & ~back).any(axis=1))
    if candidates.size == 0:
        return out
    m = pb.m
    batch = max(1, _SEARCH_CELLS // (m * m))
    for k in range(0, len(candidates), batch):
        rows = candidates[k : k + batch]
        adj = _adjacency(m, pb.first, pb.second, fwd[rows], back[rows])
        # Cheap and common: a model without a win-or-tie or without a loss-or-tie.
        stuck = ~(adj.any(axis=-1).all(axis=-1) & adj.any(axis=-2).all(axis=-1))
        out[rows[stuck]] = True
        out[rows[~stuck]] = ~strongly_connected(adj[~stuck])
    return out
