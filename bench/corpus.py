"""A deterministic synthetic corpus for the benchmarks: titled passages with a Zipf-like vocabulary.

Generated on the fly (never committed), in chunks, so a 1M-passage corpus never needs more than one
chunk of token ids at a time. The same spec gives the same passages in every process and on every
machine (numpy's PCG64 with a fixed seed per chunk).

Shape, chosen to look like encyclopedia passages to BM25:
- word ranks follow a Zipf law (p(rank r) ~ 1 / r**zipf_s) over `vocab_size` words; the most frequent
  ranks are real English function words ("the", "of", "his", "which", ...), some of which are bm25s
  stopwords and some not, so tokenisation and posting-list lengths resemble real text; the rest are
  pronounceable pseudo-words ("kobate", "strimou"), shorter ones more frequent;
- each passage has 30-90 words; its text starts with its title (1-3 capitalised rare words, like an
  entity name), as in Wikipedia, followed by Zipf-drawn words;
- queries are 2-6 distinct words drawn from one passage (its title and text), stopwords excluded.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from sage_dspy.search.passages import Passage

# The most frequent English words (Wikipedia-like order); the head of the Zipf ranking.
FUNCTION_WORDS = (
    "the of and in to a was is for on as by with he at from that his it an were which are this also be has or "
    "had first one their its after new who they two her she been other when there all during into school time "
    "may years more most only over city some world would where later up such used many can state about "
    "national out known university united then made"
).split()

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "kr", "st", "tr", "sh", "ch", "gl")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_SYLLABLES = tuple(onset + vowel for onset in _ONSETS for vowel in _VOWELS)  # 154
TITLE_MIN_RANK = 1_000  # title words are drawn from the rarer words, like entity names
CHUNK = 10_000  # passages generated per random-number draw; fixed, so a spec defines one corpus
_TABLE_SLOTS = 1 << 23  # inverse-CDF lookup table: 8M slots, finer than the rarest word's probability (~2.6e-7)


@dataclass(frozen=True)
class CorpusSpec:
    n_passages: int
    seed: int = 0
    vocab_size: int = 300_000
    zipf_s: float = 1.0
    min_words: int = 30
    max_words: int = 90


def vocabulary(spec: CorpusSpec) -> list[str]:
    """Words by rank: function words first, then pseudo-words (2 syllables before 3), all distinct."""
    rng = np.random.default_rng([spec.seed, 0])
    n = len(_SYLLABLES)
    two = [_SYLLABLES[i] + _SYLLABLES[j] for i, j in rng.permutation(np.indices((n, n)).reshape(2, -1).T)]
    need = spec.vocab_size - len(FUNCTION_WORDS) - len(two)
    three = []
    if need > 0:
        codes = rng.choice(n ** 3, size=need, replace=False)
        three = [_SYLLABLES[c // (n * n)] + _SYLLABLES[c // n % n] + _SYLLABLES[c % n] for c in codes.tolist()]
    taken = set(FUNCTION_WORDS)
    pseudo = [w for w in two + three if w not in taken]
    return (FUNCTION_WORDS + pseudo)[:spec.vocab_size]


def iter_passages(spec: CorpusSpec) -> Iterator[Passage]:
    """The corpus, one passage at a time; ids are "p0000000", "p0000001", ... in order."""
    words = np.array(vocabulary(spec), dtype=object)
    table = _zipf_table(len(words), spec.zipf_s)
    for start in range(0, spec.n_passages, CHUNK):
        yield from _chunk(spec, words, table, start, min(CHUNK, spec.n_passages - start))


def _zipf_table(vocab_size: int, s: float) -> np.ndarray:
    """Word rank for each of _TABLE_SLOTS equal slices of [0, 1): sampling a word is then one table lookup."""
    cdf = np.cumsum(np.arange(1, vocab_size + 1, dtype=np.float64) ** -s)
    edges = np.round(cdf / cdf[-1] * _TABLE_SLOTS).astype(np.int64)
    return np.repeat(np.arange(vocab_size, dtype=np.int32), np.diff(edges, prepend=0))


def _chunk(spec: CorpusSpec, words: np.ndarray, table: np.ndarray, start: int, size: int) -> Iterator[Passage]:
    rng = np.random.default_rng([spec.seed, 1, start])
    lengths = rng.integers(spec.min_words, spec.max_words + 1, size=size)
    title_lengths = rng.integers(1, 4, size=size)
    title_ids = rng.integers(min(TITLE_MIN_RANK, len(words) - 1), len(words), size=int(title_lengths.sum()))
    body_ids = table[rng.integers(len(table), size=int((lengths - title_lengths).sum()))]
    titles = [word.capitalize() for word in words[title_ids].tolist()]
    body = words[body_ids].tolist()
    t = b = 0
    for offset, (length, title_length) in enumerate(zip(lengths.tolist(), title_lengths.tolist())):
        title = " ".join(titles[t:t + title_length])
        n_body = length - title_length
        yield Passage(f"p{start + offset:07d}", title, f"{title} {' '.join(body[b:b + n_body])}.")
        t += title_length
        b += n_body


def generate(spec: CorpusSpec) -> list[Passage]:
    return list(iter_passages(spec))


def sample_queries(passages: Sequence[Passage], n: int, *, seed: int = 1,
                   min_words: int = 2, max_words: int = 6) -> list[str]:
    """n queries of min_words..max_words distinct non-stopword words, each from one random passage."""
    rng = np.random.default_rng([seed, 2])
    stop = set(STOPWORDS_EN)
    queries = []
    while len(queries) < n:
        passage = passages[int(rng.integers(len(passages)))]
        pool = list(dict.fromkeys(w for w in (passage.text.lower().rstrip(".")).split() if w not in stop))
        if len(pool) < min_words:
            continue
        size = int(rng.integers(min_words, min(max_words, len(pool)) + 1))
        queries.append(" ".join(pool[i] for i in sorted(rng.choice(len(pool), size=size, replace=False))))
    return queries
