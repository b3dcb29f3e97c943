"""The rank stage's work and its artifact: a leaderboard's entries, written as canonical JSON.

``read_inputs`` reads the votes and models that fetch wrote, ``rank_leaderboard`` ranks them with
``common.ranking`` (the run's bootstrap and seed, Settings.min_evals) and writes
``{prefix}{slug}/entries.json`` next to them. The document holds the ranked entries (model id,
slug and name, scores rounded to DECIMAL(10,6)'s six places, rank, vote count) and the unranked
models with the reason; it is serialized with sorted keys and no free-form fields, so a rerun
writes byte-identical output. ``parse_entries`` is the publish stage's validating reader; the
numerics and Parquet reading are imported by ``read_inputs`` and ``rank_leaderboard`` themselves,
so that reader (and the publish stage) loads neither numpy nor pyarrow.

When the votes rank nobody (no group of models both won and lost against each other, or the group
that can be compared has too few evaluations per model) the leaderboard is skipped: the result is
a ``RankSkipped`` naming the reason, a normal outcome that publish passes on, and the entries
document is still written, so its ``unranked`` list shows each model's reason.

The style-controlled ranking of the same votes, and its own document, are ``common.style_rank``'s.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from common import storage
from common.contracts import RankEvent, RankResult, RankSkipped, Skipped
from common.errors import ArtifactCorrupt, InvalidInput
from common.scores import fits, round6
from common.storage import S3Uri, parse_s3_uri

if TYPE_CHECKING:
    import pyarrow as pa

    from common.ranking import Ranking, Votes
    from common.votes import VotesWithStyle

ENTRIES_OBJECT = "entries.json"
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class EntryRecord(TypedDict):
    model_id: str
    model_slug: str
    model_name: str
    bt_score: float
    bootstrap_q025: float
    bootstrap_q975: float
    rank: int
    vote_count: int


class UnrankedRecord(TypedDict):
    model_id: str
    model_slug: str
    model_name: str
    vote_count: int
    reason: str


class EntriesDocument(TypedDict):
    leaderboard: str
    snapshot_identifier: str
    vote_count: int
    bootstrap: int
    seed: int
    min_evals: int
    separable_replicates: int
    entries: list[EntryRecord]
    unranked: list[UnrankedRecord]


def _score(value: float | None) -> float:
    """A ranked entry always has scores (the ranking gives every ranked model one)."""
    if value is None:
        raise ValueError("a ranked entry has no score")
    return round6(value)


def build_entries(
    ranking: Ranking,
    models: pa.Table,
    *,
    leaderboard: str,
    snapshot_identifier: str,
    min_evals: int,
) -> EntriesDocument:
    """The entries document for a ranking whose model labels are ``models``' ids (pure)."""
    ids = models.column("id").to_pylist()
    info = dict(
        zip(
            ids,
            zip(models.column("slug").to_pylist(), models.column("name").to_pylist(), strict=True),
            strict=True,
        )
    )
    missing = sorted({e.model for e in ranking.entries} - set(info))
    if missing:
        raise ArtifactCorrupt(f"models.parquet lacks model(s) {', '.join(missing[:5])}")
    entries: list[EntryRecord] = []
    unranked: list[UnrankedRecord] = []
    for e in ranking.entries:
        slug, name = info[e.model]
        if e.rank is None:
            unranked.append(
                UnrankedRecord(
                    model_id=e.model,
                    model_slug=slug,
                    model_name=name,
                    vote_count=e.vote_count,
                    reason=e.reason or "not ranked",
                )
            )
            continue
        entries.append(
            EntryRecord(
                model_id=e.model,
                model_slug=slug,
                model_name=name,
                bt_score=_score(e.bt_score),
                bootstrap_q025=_score(e.bootstrap_q025),
                bootstrap_q975=_score(e.bootstrap_q975),
                rank=e.rank,
                vote_count=e.vote_count,
            )
        )
    return EntriesDocument(
        leaderboard=leaderboard,
        snapshot_identifier=snapshot_identifier,
        vote_count=ranking.n_votes,
        bootstrap=ranking.bootstrap,
        seed=ranking.seed,
        min_evals=min_evals,
        separable_replicates=ranking.separable_replicates,
        entries=entries,
        unranked=unranked,
    )


def nothing_ranked_reason(ranking: Ranking, *, min_evals: int) -> str | None:
    """Why nobody in ``ranking`` is ranked, or None when somebody is."""
    if ranking.ranked:
        return None
    size = f"{len(ranking.entries):,} models, {ranking.n_votes:,} votes"
    comparable = sum(1 for e in ranking.entries if e.bt_score is not None)
    if not comparable:
        why = "no group of models both won and lost against each other"
    else:
        why = (
            f"the {comparable} models that can be compared have fewer than {min_evals}"
            " evaluations each"
        )
    return f"no model could be ranked: {why} ({size})"


def entries_uri(prefix: str, slug: str) -> S3Uri:
    return parse_s3_uri(prefix, "run.artifacts_prefix").child(slug, ENTRIES_OBJECT)


@dataclass(frozen=True)
class RankInputs:
    """What fetch wrote for one leaderboard: its votes, their style counts (None in a file from
    before style control) and its models (id, slug, name)."""

    votes: Votes
    style: VotesWithStyle | None
    models: pa.Table


def read_inputs(event: RankEvent) -> RankInputs:
    """Read one leaderboard's votes and models; a file that is not what fetch writes raises
    ArtifactCorrupt."""
    from common.votes import has_style_columns, read_votes, read_votes_with_style

    board = event["leaderboard"]
    votes_uri = parse_s3_uri(board["votes_uri"], "leaderboard.votes_uri")
    models_uri = parse_s3_uri(board["models_uri"], "leaderboard.models_uri")
    source = io.BytesIO(storage.get_bytes(votes_uri))
    columns = {"model_a": "model1_id", "model_b": "model2_id"}
    style: VotesWithStyle | None = None
    try:
        if has_style_columns(source):
            style = read_votes_with_style(source, **columns)
            votes = style.votes
        else:
            votes = read_votes(source, **columns)
    except InvalidInput as exc:
        raise ArtifactCorrupt(f"{votes_uri}: {exc}") from None
    problem = votes_problem(votes)
    if problem is not None:
        raise ArtifactCorrupt(f"{votes_uri}: {problem}")
    models = storage.get_parquet(models_uri)
    problem = models_problem(models)
    if problem is not None:
        raise ArtifactCorrupt(f"{models_uri}: {problem}")
    return RankInputs(votes=votes, style=style, models=models)


def votes_problem(votes: Votes) -> str | None:
    """What fetch never writes into a votes file (it skips a sparse leaderboard and leaves a
    self-battle out), or None: the ranking would fail on it under another name."""
    if votes.n_votes == 0:
        return "no votes (fetch writes none for a leaderboard it skips)"
    if bool((votes.model_a == votes.model_b).any()):
        return "a vote of a model against itself (fetch leaves those out)"
    return None


def models_problem(models: pa.Table) -> str | None:
    """What a models file fetch writes always is -- id, slug and name as non-null strings, one
    row per id -- or what is wrong with it: a duplicate id would name the entries after whichever
    row came last, a null slug fail publish on the entries instead of here."""
    import pyarrow as pa

    names = ("id", "slug", "name")
    if not set(names) <= set(models.column_names):
        return "expected columns id, slug, name"
    for name in names:
        column = models.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            return f"column {name} is {column.type}, expected strings"
        if column.null_count:
            return f"column {name} has {column.null_count} null(s)"
    # A set over the ids (hundreds at most): pyarrow.compute's unique would load that module,
    # which the rank stage's cold start otherwise never pays for (common.votes).
    ids = models.column("id").to_pylist()
    if len(set(ids)) != len(ids):
        return "a model id appears more than once"
    return None


def rank_leaderboard(
    event: RankEvent, inputs: RankInputs, *, min_evals: int, threads: int | None = None
) -> tuple[RankResult | RankSkipped, Ranking]:
    """Rank one leaderboard's votes (the bootstrap on ``threads`` threads, None: one per CPU),
    write the entries next to them; a leaderboard where nobody could be ranked is skipped (see
    the module docstring)."""
    from common.ranking import rank_votes

    run, board = event["run"], event["leaderboard"]
    ranking = rank_votes(
        inputs.votes, bootstrap=run["bootstrap"], seed=run["seed"], min_evals=min_evals,
        workers=threads,
    )  # fmt: skip
    document = build_entries(
        ranking,
        inputs.models,
        leaderboard=board["slug"],
        snapshot_identifier=run["snapshot_identifier"],
        min_evals=min_evals,
    )
    target = entries_uri(run["artifacts_prefix"], board["slug"])
    storage.put_json(target, document)
    reason = nothing_ranked_reason(ranking, min_evals=min_evals)
    if reason is not None:
        return RankSkipped(
            run=run, leaderboard=board, skipped=Skipped(slug=board["slug"], reason=reason)
        ), ranking
    result = RankResult(
        run=run,
        leaderboard=board,
        entries_uri=str(target),
        ranked_count=len(document["entries"]),
        unranked_count=len(document["unranked"]),
    )
    return result, ranking


# --- reading it back (publish) --------------------------------------------------------------------
def _field(record: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ArtifactCorrupt(
            f"{where}.{key}: missing or not a {getattr(kind, '__name__', 'number')}"
        )
    return value


def parse_entries(
    raw: Any, uri: S3Uri, *, leaderboard: str, snapshot_identifier: str
) -> EntriesDocument:
    """Validate an entries document read from ``uri`` for this leaderboard and run; a bad one
    raises ArtifactCorrupt."""
    where = str(uri)
    if not isinstance(raw, dict):
        raise ArtifactCorrupt(f"{where}: expected a JSON object")
    if (
        raw.get("leaderboard") != leaderboard
        or raw.get("snapshot_identifier") != snapshot_identifier
    ):
        raise ArtifactCorrupt(
            f"{where}: holds {raw.get('leaderboard')!r} {raw.get('snapshot_identifier')!r},"
            f" not {leaderboard!r} {snapshot_identifier!r}"
        )
    entries: list[EntryRecord] = []
    seen: set[str] = set()
    for i, entry in enumerate(_field(raw, "entries", list, where)):
        record = _entry(entry, f"{where}: entries[{i}]")
        if record["model_id"] in seen:
            raise ArtifactCorrupt(
                f"{where}: entries[{i}].model_id: {record['model_id']} appears twice"
            )
        seen.add(record["model_id"])
        entries.append(record)
    return EntriesDocument(
        leaderboard=_field(raw, "leaderboard", str, where),
        snapshot_identifier=_field(raw, "snapshot_identifier", str, where),
        vote_count=_field(raw, "vote_count", int, where),
        bootstrap=_field(raw, "bootstrap", int, where),
        seed=_field(raw, "seed", int, where),
        min_evals=_field(raw, "min_evals", int, where),
        separable_replicates=_field(raw, "separable_replicates", int, where),
        entries=entries,
        unranked=[
            _unranked(item, f"{where}: unranked[{i}]")
            for i, item in enumerate(_field(raw, "unranked", list, where))
        ],
    )


def _entry(raw: Any, at: str) -> EntryRecord:
    model_id = _field(raw, "model_id", str, at)
    if not _UUID_RE.fullmatch(model_id):
        raise ArtifactCorrupt(f"{at}.model_id: {model_id[:40]!r} is not a UUID")
    scores = {}
    for key in ("bt_score", "bootstrap_q025", "bootstrap_q975"):
        value = _field(raw, key, (int, float), at)
        if not fits(value):
            raise ArtifactCorrupt(f"{at}.{key}: {value} does not fit DECIMAL(10,6)")
        scores[key] = float(value)
    return EntryRecord(
        model_id=model_id,
        model_slug=_field(raw, "model_slug", str, at),
        model_name=_field(raw, "model_name", str, at),
        bt_score=scores["bt_score"],
        bootstrap_q025=scores["bootstrap_q025"],
        bootstrap_q975=scores["bootstrap_q975"],
        rank=_field(raw, "rank", int, at),
        vote_count=_field(raw, "vote_count", int, at),
    )


def _unranked(raw: Any, at: str) -> UnrankedRecord:
    return UnrankedRecord(
        model_id=_field(raw, "model_id", str, at),
        model_slug=_field(raw, "model_slug", str, at),
        model_name=_field(raw, "model_name", str, at),
        vote_count=_field(raw, "vote_count", int, at),
        reason=_field(raw, "reason", str, at),
    )
