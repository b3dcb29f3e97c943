"""Bradley-Terry ranking of arena votes: scores, bootstrap or sandwich CIs, ranks, in numpy.

Model. A vote between models i and j is a win for i (1), a tie (1/2) or a loss (0);
P(i beats j) = 1 / (1 + 10^(r_j - r_i)), a tie counts as half a win and half a loss, the ratings r
are the maximum-likelihood estimate with the gauge mean(r) = 0, and the reported score is
400 r + 1000. This is upstream BixArena's (and FastChat's) model.

Estimator. Votes are aggregated once into per-pair (win, tie, loss) counts; the likelihood depends
on the data only through them, so every later step costs O(pairs), not O(votes). The full-data fit
is a damped Newton method on those counts: the Hessian is the graph Laplacian with weights
ln(10)^2 n p (1 - p), made invertible by adding c 11^T (which fixes the gauge: the step then sums to
zero). Newton converges quadratically, to ~1e-10 Elo, where upstream's L-BFGS-B (maxiter 100,
gtol 1e-6) stops ~0.02 Elo short.

Existence. The MLE exists iff the "beats-or-ties" directed graph (i -> j when i won or tied
against j at least once) is strongly connected. We rank its largest strongly connected component
and report every other model with a reason ("never lost", "never won", "never won against the
ranked models", "never lost against the ranked models", "not connected to the main comparison
graph") instead of a score that would be an artefact of where an optimizer stopped. No
regularization touches a well-posed fit: the safeguard moves no score on well-posed data.

Bootstrap. The votes of the ranked component are resampled B times as Multinomial(N, counts/N)
over the (pair, outcome) cells; this has the same law, for everything the fit sees, as upstream's
multinomial over ordered (model1, model2, outcome) cells and as resampling the N votes. We draw it
exactly but faster than numpy's multinomial (one binomial per cell): independent Poisson counts
with total rate N - 2 sqrt(N) (given their total T they are Multinomial(T, p)), a row with T > N
drawn again, then the N - T missing votes drawn as categorical samples. Replicates are fitted
together, warm-started at the full-data fit: a chord iteration (Newton with the full-data Hessian,
one factorization for all replicates) contracts by ~1/sqrt(votes per model) per step; a replicate
where it does not contract gets its own damped Newton. A replicate whose beats-or-ties graph is
not strongly connected (e.g. a model's only loss was not drawn) has no MLE; it alone is fitted
with a ridge RIDGE/2 |r|^2 (a N(0, 10^2) prior on r, i.e. 4000 Elo standard deviation), which keeps
its ratings finite: a separated model lands ~1000-2500 Elo beyond the others, and such replicates
are counted in ``Ranking.separable_replicates``. Replicates come in chunks (8 to 256 replicates,
fewer for more cells; the size depends on the data only), chunk k drawing from child k of
SeedSequence(seed), so the output is bit-identical for a given seed and data whatever the number
of worker threads; BLAS runs on one thread (``_threads``), whatever the machine's cores.
CI = 2.5% / 97.5% quantiles (linear interpolation) of replicate scores; the reported score is the
full-data fit.

Sandwich. ``ci_method="sandwich"`` gives the normal-approximation interval from
H^+ G H^+ (G = sum over votes of the outer products of their score contributions): one Hessian,
no resampling; it agrees with the bootstrap on large arenas.

Every reported number is clipped to +-SCORE_LIMIT so it fits PostgreSQL's DECIMAL(10,6); only
contrived data or prior-determined replicates come near it.

Style control. ``style.rank_with_style`` fits the same model with answer length and markdown
counts as covariates (the Chatbot Arena method); see that module's docstring.

Where each part lives: ``counts`` (votes and per-pair counts), ``bradley_terry`` (the public
entry points), ``result`` (what they return), ``scale``, ``style`` (style control: its input,
result and entry point); the private ``_components`` (existence), ``_incidence`` (per-model sums
over pairs or votes), ``_likelihood`` (Newton), ``_bootstrap``, ``_quantiles`` (its interval),
``_sandwich`` and ``_threads`` hold the numerics, ``_style_problem``, ``_style_likelihood``,
``_style_bootstrap`` and ``_style_batch`` those of style control.
"""

from __future__ import annotations

from common.ranking.bradley_terry import fit_ratings, rank_counts, rank_votes
from common.ranking.counts import OUTCOMES, PairCounts, Votes, aggregate
from common.ranking.result import CIMethod, ModelRanking, Ranking
from common.ranking.scale import OFFSET, SCALE
from common.ranking.style import (
    STYLE_FEATURES,
    StyleCoefficient,
    StyleFeatures,
    StyleRanking,
    rank_with_style,
)

__all__ = [
    "OFFSET",
    "OUTCOMES",
    "SCALE",
    "STYLE_FEATURES",
    "CIMethod",
    "ModelRanking",
    "PairCounts",
    "Ranking",
    "StyleCoefficient",
    "StyleFeatures",
    "StyleRanking",
    "Votes",
    "aggregate",
    "fit_ratings",
    "rank_counts",
    "rank_votes",
    "rank_with_style",
]
