"""The fake cross-encoder: a deterministic relevance score for a (query, document) pair.

A document that shares more words with the query scores higher, which is enough for a test to predict an
order: with `shared` the number of distinct words (lower-cased runs of letters and digits) the two texts have in
common and `jaccard` = shared / distinct words of both, the score is x / (x + 1) with x = shared + jaccard. It lies
in [0, 1), is 0 when nothing is shared, and grows with every shared word (the Jaccard term only separates
documents that share as many words, favouring the shorter one).
"""

from __future__ import annotations

import functools
import re

from sim.text import count_prompt_tokens

_WORD = re.compile(r'[^\W_]+')


@functools.lru_cache(maxsize=4096)
def words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def relevance(query: str, document: str) -> float:
    """The score of `document` for `query` (see the module docstring)."""
    q, d = words(query), words(document)
    shared = len(q & d)
    union = len(q | d)
    x = shared + (shared / union if union else 0.0)
    return x / (x + 1)


def pair_tokens(query: str, document: str) -> int:
    """Prompt tokens of one pair, counted like every prompt of the sim: each text's words plus one."""
    return count_prompt_tokens((query, document))
