"""The style of an answer: its length in tokens and its markdown, counted by one documented rule.

Style control (docs/ranking.md) compares the two answers of a battle on four raw counts. FastChat
counts the markdown with a few regular expressions (add_markdown_info.py, which reads token
counts from the conversation's metadata; lmarena's arena-hard-auto counts tokens with tiktoken's
gpt-4o encoding); we keep the markdown rules, use no tokenizer (no dependency, no vocabulary
file in the Lambda image) and
write every rule as a regular expression that Python's ``re``, RE2 (``pyarrow.compute``) and
PostgreSQL's ARE (``regexp_count``) read the same way. Per answer (one ``api.message``):

- ``tokens``: runs of ASCII letters, runs of digits, runs of ASCII punctuation, and every
  non-ASCII character, each one token (``TOKEN``). Spaces and line breaks are not tokens. The
  whole answer counts, code included. Against cl100k_base (tiktoken's encoding for gpt-3.5/4,
  which FastChat counts with): 0.95 x its count on technical markdown (this repository's
  documents cut into 83 answers of ~580 tokens: sd 0.07, range 0.80-1.16, correlation 0.98) and
  0.88 x on the simulator's biomedical prose (sd 0.02): long or rare words are one token here,
  several there. Splitting letter runs every 8 letters would bring both to 1.00-1.05 x, at the
  price of the byte-class counting below (``token_counts``) that makes the rule cheap.
- Before the markdown counts, each fenced code block -- from ````` ``` ````` to the next
  ````` ``` `````, or to the end of the answer when it is never closed -- is replaced by a single
  backtick (``FENCE``), so nothing inside code counts and what follows a closing fence on its
  line stays off the start of a line.
- ``headers``: lines starting with 1 to 6 ``#`` and a space or tab (``HEADER``): ``# Title`` and
  ``###### x`` count, ``#hashtag``, ``####### x`` and an indented ``  # x`` do not.
- ``list_items``: lines starting, after any spaces or tabs, with ``-``, ``*``, ``+`` or a number
  followed by ``.`` or ``)``, then a space or tab (``LIST_ITEM``); nested items count each.
- ``bold``: ``**x**`` spans plus ``__x__`` spans, each non-empty, on one line and without the
  marker character inside (``BOLD_STARS``, ``BOLD_UNDERSCORES``, counted apart and summed, as
  FastChat does); ``**`` alone is nothing.

A side's counts are the sums over the battle's rounds of its answers' counts. Deviations from
FastChat: tokens by this rule instead of cl100k_base (the ratio above; style control uses
(a - b) / (a + b + 1), which a constant factor barely moves); FastChat joins a side's turns
before counting, we count each answer alone (the same except for a fence left open across
turns); FastChat's ``\\s`` after ``#``, ``-`` or ``1.`` also takes a line break, ours a space or
tab only (a bare ``#`` line is no header), and its ``\\s`` and ``\\d`` are Unicode (a
non-breaking or ideographic space, Arabic-Indic digits), ours ASCII; ``N)`` items count as
ordered items; FastChat removes only the inside of a closed fence whose code holds no backtick
(and every other copy of that text): a fence with a backtick inside stays, and its closing fence
can pair with the next block's opening one; it leaves an unclosed fence's code in the counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa

TOKEN = r"[A-Za-z]+|[0-9]+|[!-/:-@\[-`{-~]+|[^\x00-\x7F]"
FENCE = r"```.*?(```|$)"
"""Needs "dot matches newline" and "$ only at the end": RE2 and Python ``(?s)``, PostgreSQL's
default (no ``n`` flag)."""
HEADER = r"^#{1,6}[ \t]"
LIST_ITEM = r"^[ \t]*([-*+]|[0-9]+[.)])[ \t]"
BOLD_STARS = r"\*\*[^*\n]+\*\*"
BOLD_UNDERSCORES = r"__[^_\n]+__"
"""The line-anchored ones need "^ after a newline": RE2 and Python ``(?m)``, PostgreSQL's ``n``
flag (which also keeps ``[^...]`` off newlines: harmless, the bold classes exclude them)."""

FEATURES: tuple[str, ...] = ("tokens", "headers", "list_items", "bold")
"""The counts in order (``common.ranking.style.STYLE_FEATURES``' length, headers, lists, bold)."""
STYLE_COLUMNS: tuple[str, ...] = tuple(
    f"model{side}_{feature}" for side in (1, 2) for feature in FEATURES
)
"""The columns that carry them in votes.parquet (nullable int32): model1's answers' counts, then
model2's, each summed over the battle's rounds; all null when either model lacks an answer in
some round or the battle has no round."""


class AnswerStyle(NamedTuple):
    tokens: int
    headers: int
    list_items: int
    bold: int


_TOKEN = re.compile(TOKEN)
_FENCE = re.compile(FENCE, re.S)
_HEADER = re.compile(HEADER, re.M)
_LIST_ITEM = re.compile(LIST_ITEM, re.M)
_BOLD_STARS = re.compile(BOLD_STARS)
_BOLD_UNDERSCORES = re.compile(BOLD_UNDERSCORES)


def answer_style(text: str) -> AnswerStyle:
    """The four counts of one answer (Python's ``re``; the rule's reference for one text)."""
    markdown = _FENCE.sub("`", text)
    return AnswerStyle(
        tokens=sum(1 for _ in _TOKEN.finditer(text)),
        headers=sum(1 for _ in _HEADER.finditer(markdown)),
        list_items=sum(1 for _ in _LIST_ITEM.finditer(markdown)),
        bold=sum(1 for _ in _BOLD_STARS.finditer(markdown))
        + sum(1 for _ in _BOLD_UNDERSCORES.finditer(markdown)),
    )


def side_style(answers: Sequence[str | None]) -> AnswerStyle | None:
    """A side's counts over a battle's rounds; None when it has no answer or a round lacks one."""
    if not answers or any(a is None for a in answers):
        return None
    counts = [answer_style(a) for a in answers if a is not None]
    return AnswerStyle(*(sum(c[i] for c in counts) for i in range(len(FEATURES))))


def style_counts(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The four counts of many answers at once, shape (answers, 4) int64, zeros for a null text
    (RE2 through ``pyarrow.compute``: the rule as the fetch stage and the simulator apply it)."""
    import pyarrow.compute as pc  # not at the top: the rank stage reads STYLE_COLUMNS only

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    fenced = pc.fill_null(pc.match_substring(texts, "```"), False)
    markdown = texts
    if pc.any(fenced).as_py():
        stripped = pc.replace_substring_regex(texts.filter(fenced), "(?s)" + FENCE, "`")
        markdown = pc.replace_with_mask(texts, fenced, stripped)
    columns = [
        pa.array(token_counts(texts)),
        # Arrow restarts the search after a match as if at the start of a text, where (?m)^
        # matches: each match takes the rest of its line, so the next search starts at a newline.
        pc.count_substring_regex(markdown, "(?m)" + HEADER + "[^\n]*"),
        pc.count_substring_regex(markdown, "(?m)" + LIST_ITEM + "[^\n]*"),
        pc.add(
            pc.count_substring_regex(markdown, BOLD_STARS),
            pc.count_substring_regex(markdown, BOLD_UNDERSCORES),
        ),
    ]
    return np.stack(
        [
            np.asarray(c.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
            for c in columns
        ],
        axis=1,
    ).reshape(len(texts), len(FEATURES))


# Byte classes of UTF-8 text for TOKEN: 0 none (ASCII whitespace and controls, continuation
# bytes), 1 letter, 2 digit, 3 ASCII punctuation, 4 the first byte of a non-ASCII character. A
# token starts wherever the class is not 0 and differs from the previous byte's; a lead byte
# always follows an ASCII or continuation byte, so each non-ASCII character starts one.
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)] = 1
_CLASS[np.frombuffer(b"0123456789", np.uint8)] = 2
_CLASS[np.frombuffer(bytes(b for b in range(0x21, 0x7F) if not chr(b).isalnum()), np.uint8)] = 3
_CLASS[0xC0:] = 4
_CHUNK_BYTES = 1 << 22


def token_counts(texts: pa.Array) -> np.ndarray:
    """TOKEN matches per text (0 for null), counted on the UTF-8 bytes in numpy: ~10x faster
    than RE2's match-by-match count, and the same number (tested against ``answer_style``)."""
    n = len(texts)
    if pa.types.is_large_string(texts.type):
        offsets_type: type[np.integer] = np.int64
    else:
        texts = texts.cast(pa.string())
        offsets_type = np.int32
    counts = np.zeros(n, dtype=np.int64)
    if n == 0 or texts.buffers()[2] is None:
        return counts
    width = np.dtype(offsets_type).itemsize
    offsets = np.frombuffer(
        texts.buffers()[1], dtype=offsets_type, count=n + 1, offset=width * texts.offset
    ).astype(np.int64)
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)
    first = 0
    while first < n:
        # Whole texts, about _CHUNK_BYTES at a time (one long text makes a chunk of its own).
        last = int(np.searchsorted(offsets, offsets[first] + _CHUNK_BYTES, side="right")) - 1
        last = min(max(last, first + 1), n)
        lo, hi = int(offsets[first]), int(offsets[last])
        cls = _CLASS[data[lo:hi]]
        start = cls != 0
        start[1:] &= cls[1:] != cls[:-1]
        local = offsets[first : last + 1] - lo
        heads = local[:-1][local[:-1] < len(cls)]
        start[heads] = cls[heads] != 0
        sizes = np.diff(local)
        filled = np.flatnonzero(sizes)
        if len(filled):
            # reduceat sums from each start to the next; empty texts are left at 0.
            counts[first + filled] = np.add.reduceat(
                start.view(np.uint8), local[filled], dtype=np.int64
            )
        first = last
    return counts
