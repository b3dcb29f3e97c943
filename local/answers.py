"""The simulator's answer texts: per model a length and a taste for markdown, cheap to generate.

An answer is a sequence of units drawn from ``UNITS``: plain sentences, sentences with a bold
term, list items (bulleted or numbered), headers, paragraph breaks and, rarely, a fenced code
block. Every unit but a plain sentence starts with a line break and a plain sentence ends with a
space, so no token, line or bold span straddles two units: an answer's style counts
(``common.answer_style``) are the sums of its units' counts, known without scanning the text.
Texts are made only when written, in Arrow (take the units, join each answer's list), so a million
battles cost integer arrays until then.

Per model, ``verbosity`` (mean answer length in tokens) is log-normal around the arena's
``answer_tokens`` and ``markdown`` (0 to 1, the share of units that carry markdown, at most 0.6)
rises with it: verbose models are also the markdown-heavy ones, as on real arenas. A battle has
1, 2 or 3 rounds (``ROUNDS_P``); in ``MISSING_ANSWER_RATE`` of battles one answer of one round is
missing (a model that failed: a NULL message), and ``NO_ROUND_RATE`` have no round at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.answer_style import FEATURES, answer_style

ROUNDS_P = (0.78, 0.16, 0.06)
MISSING_ANSWER_RATE = 0.015
NO_ROUND_RATE = 0.005
ANSWER_TOKENS = 60.0
"""The median over models of a model's mean answer length in tokens. Real answers are longer
(~300-800 tokens); style control compares the two sides' ratios, which shorter answers keep, and
the texts are what a million battles spend most of their seeding time on (benchmark
``simulate/1M``). ``simulate_arena(answer_tokens=350)`` makes realistic ones."""
VERBOSITY_SPREAD = 0.6
"""Standard deviation of log(verbosity) across models: the wordiest of 40 models writes ~5x the
tersest."""

_SENTENCES = (
    "The tumour suppressor p53 halts the cell cycle when DNA damage is detected.",
    "CRISPR-Cas9 cuts both strands of DNA at a site chosen by a 20-nucleotide guide RNA.",
    "Most missense variants of uncertain significance turn out to be benign on re-analysis.",
    "Randomized controlled trials remain the reference design for estimating treatment effects.",
    "Single-cell RNA sequencing resolves cell states that bulk profiles average away.",
    "Mitochondria produce most of the cell's ATP through oxidative phosphorylation.",
    "Antibody affinity maturation happens in germinal centres through somatic hypermutation.",
    "The blood-brain barrier limits which small molecules reach the central nervous system.",
    "Horizontal gene transfer spreads antibiotic resistance between bacterial species.",
    "Hazard ratios from a Cox model assume that the hazards stay proportional over time.",
    "Epigenetic marks such as DNA methylation can silence a gene without changing its sequence.",
    "Long-read sequencing assembles repetitive regions that short reads cannot place.",
    "Pharmacokinetics describes absorption, distribution, metabolism and excretion of a drug.",
    "Confounding by indication biases observational comparisons of treatments.",
    "Synaptic plasticity underlies learning through long-term potentiation and depression.",
    "Gene regulatory networks combine feedback loops that make cell fates robust.",
    "Protein structure prediction now reaches near-experimental accuracy for many domains.",
    "Population stratification inflates false positives in genome-wide association studies.",
    "T cells recognise peptides presented by MHC molecules on the surface of infected cells.",
    "A dose of 5 mg/kg twice daily kept plasma levels within the therapeutic window.",
    "Organoids reproduce parts of organ architecture from stem cells in three dimensions.",
    "Metagenomic sequencing identifies pathogens without culturing them first.",
    "The effect size matters more than the p-value when judging clinical relevance.",
    "Alternative splicing lets one gene encode several protein isoforms.",
)
_TERMS = (
    "apoptosis", "gene expression", "sensitivity", "the null hypothesis", "off-target effects",
    "statistical power", "the immune response", "dose-response", "selection bias", "homeostasis",
)  # fmt: skip
_HEADERS = ("Overview", "Background", "Mechanism", "Key points", "Evidence", "Limitations",
            "Clinical relevance", "Summary")  # fmt: skip
_CODE = (
    "\n\n```python\n# fit a logistic model\nimport numpy as np\nx = np.log(dose)\n"
    "- not a list item\n```\n"
)
PROMPTS: tuple[str, ...] = (
    "How does p53 respond to DNA damage?",
    "Explain how CRISPR-Cas9 selects its target.",
    "What limits drug delivery to the brain?",
    "How should I interpret a hazard ratio of 0.7?",
    "Why do GWAS need to correct for population structure?",
    "What is the difference between bulk and single-cell RNA-seq?",
    "How do bacteria acquire antibiotic resistance?",
    "What does a variant of uncertain significance mean for a patient?",
)


def _units() -> tuple[list[str], np.ndarray]:
    """Unit texts and their kind: 0 plain, 1 bold, 2 list item, 3 header, 4 break, 5 code."""
    texts: list[str] = []
    kinds: list[int] = []
    for s in _SENTENCES:
        texts.append(s + " ")
        kinds.append(0)
    for i, s in enumerate(_SENTENCES):
        term = _TERMS[i % len(_TERMS)]
        texts.append(f"\nThis bears on **{term}**: {s[0].lower()}{s[1:]} ")
        kinds.append(1)
    for i, s in enumerate(_SENTENCES):
        texts.append(f"\n- {s} " if i % 3 else f"\n{i % 9 + 1}. {s} ")
        kinds.append(2)
    for h in _HEADERS:
        texts.append(f"\n\n## {h}\n")
        kinds.append(3)
    texts.append("\n\n")
    kinds.append(4)
    texts.append(_CODE)
    kinds.append(5)
    return texts, np.array(kinds, dtype=np.int8)


UNITS, UNIT_KIND = _units()
UNIT_STYLE = np.array([answer_style(u) for u in UNITS], dtype=np.int32)
"""Style counts of each unit (rows) by feature (``FEATURES`` order)."""
_KIND_UNITS = [np.flatnonzero(np.equal(UNIT_KIND, k)) for k in range(6)]
_UNIT_TOKENS = float(UNIT_STYLE[UNIT_KIND == 0, 0].mean())


@dataclass(frozen=True)
class Answers:
    """Every answer of an arena, in battle, round, side order, as unit sequences.

    Answer j belongs to battle ``battle[j]``, round ``round[j]`` (1-based) and side ``side[j]``
    (1 or 2); its units are ``units[offsets[j]:offsets[j + 1]]``. ``missing[j]``: the model gave
    no answer (its message is NULL; no units). Battles without rounds have no answers.
    """

    battle: np.ndarray
    round: np.ndarray
    side: np.ndarray
    missing: np.ndarray
    offsets: np.ndarray
    units: np.ndarray

    @property
    def count(self) -> int:
        return len(self.battle)

    def style(self) -> np.ndarray:
        """Style counts per answer, shape (answers, 4); zeros for a missing answer."""
        per_unit = UNIT_STYLE[self.units].astype(np.int64)
        totals = np.zeros((len(per_unit) + 1, len(FEATURES)), dtype=np.int64)
        np.cumsum(per_unit, axis=0, out=totals[1:])
        return (totals[self.offsets[1:]] - totals[self.offsets[:-1]]).astype(np.int32)

    def texts(self, start: int, stop: int) -> pa.StringArray:
        """The texts of answers ``start`` to ``stop`` (a missing answer is null)."""
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        pieces = pa.array(UNITS).take(pa.array(self.units[lo:hi]))
        lists = pa.ListArray.from_arrays(
            pa.array(self.offsets[start : stop + 1] - lo, pa.int32()),
            pieces,
            mask=pa.array(self.missing[start:stop]),
        )
        return pc.binary_join(lists, "")


def battle_style(answers: Answers, battles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per battle the style counts of side 1 and side 2 summed over rounds (shape (battles, 4)
    each), and whether the battle has them: at least one round and no missing answer."""
    style = answers.style().astype(np.int64)
    sums = []
    for side in (1, 2):
        mine = answers.side == side
        total = np.zeros((battles, len(FEATURES)), dtype=np.int64)
        np.add.at(total, answers.battle[mine], style[mine])
        sums.append(total.astype(np.int32))
    has_round = np.bincount(answers.battle, minlength=battles) > 0
    lacks = np.bincount(answers.battle[answers.missing], minlength=battles) > 0
    return sums[0], sums[1], has_round & ~lacks


def model_styles(
    count: int, rng: np.random.Generator, answer_tokens: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per model its mean answer length in tokens and its share of markdown units."""
    z = rng.normal(0.0, 1.0, size=count)
    verbosity = answer_tokens * np.exp(VERBOSITY_SPREAD * z)
    markdown = 0.6 / (1.0 + np.exp(-(1.5 * z + rng.normal(0.0, 0.5, size=count))))
    return verbosity, markdown


def draw_answers(
    rng: np.random.Generator,
    model1: np.ndarray,
    model2: np.ndarray,
    verbosity: np.ndarray,
    markdown: np.ndarray,
) -> Answers:
    """Rounds, missing answers and each answer's units for the battles (model1[i], model2[i])."""
    n = len(model1)
    rounds = rng.choice(len(ROUNDS_P), size=n, p=ROUNDS_P).astype(np.int64) + 1
    rounds[rng.random(n) < NO_ROUND_RATE] = 0
    per_battle = 2 * rounds
    battle = np.repeat(np.arange(n, dtype=np.int32), per_battle)
    first = np.repeat(np.cumsum(per_battle) - per_battle, per_battle)
    slot = np.arange(len(battle)) - first
    round_number = (slot // 2 + 1).astype(np.int16)
    side = (slot % 2 + 1).astype(np.int8)
    model = np.where(side == 1, model1[battle], model2[battle])
    missing = np.zeros(len(battle), dtype=bool)
    broken = np.flatnonzero((rng.random(n) < MISSING_ANSWER_RATE) & (rounds > 0))
    missing[first[np.searchsorted(battle, broken)] + rng.integers(0, per_battle[broken])] = True
    # Units per answer: enough plain-sentence-sized units for the model's mean length.
    mean_units = np.maximum(verbosity[model] / _UNIT_TOKENS, 1.0)
    lengths = np.where(missing, 0, 1 + rng.poisson(mean_units - 1.0)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    owner_md = np.repeat(markdown[model], lengths)
    u = rng.random(total)
    kind = np.select(
        [u < owner_md * 0.45, u < owner_md * 0.8, u < owner_md, u < owner_md + 0.06,
         u < owner_md + 0.062],
        [2, 1, 3, 4, 5],
        default=0,
    )  # fmt: skip
    # A header opening a markdown-heavy answer reads naturally; mid-answer headers are rarer.
    kind[(kind == 3) & (rng.random(total) < 0.6)] = 2
    pick = rng.random(total)
    units = np.empty(total, dtype=np.int16)
    for k, members in enumerate(_KIND_UNITS):
        chosen = kind == k
        units[chosen] = members[(pick[chosen] * len(members)).astype(np.int64)]
    return Answers(
        battle=battle,
        round=round_number,
        side=side,
        missing=missing,
        offsets=offsets,
        units=units,
    )
