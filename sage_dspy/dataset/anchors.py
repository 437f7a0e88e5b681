"""What a question is about: its anchors, the words that name things (capitalised words and numbers).

Two questions written from one template share most of their wording ("Who is the father of ...?") and differ
only in what they name; a copied or reworded benchmark question keeps what the original names. So a wording
match counts as contamination only when the benchmark question's anchors are there too (decontaminate.py).

Words are compared without case, punctuation or a possessive "'s" ("Ahmose-Henutemipet's" names
"ahmose" and "henutemipet"), so a lowercased copy of a question still has its anchors.
"""

import re

# Words every question has; capitalised at the start of a question they name nothing.
STOPWORDS = frozenset(
    "a an the who whom whose what which when where why how is are was were be been being do does did has have had "
    "of in on at to for from by with as and or but not that this these those it its his her their there than "
    "then into onto about after before during between same also one name named called if imagine".split())
# Capitalised inside a title ("Be the One", "Lord of the Rings") a stopword names something, but these few
# say nothing about which thing.
GLUE = frozenset("a an the of and or in on at to for by".split())
_POSSESSIVE = re.compile(r"['’]s\b")
_WORD = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"[.?!:]\s*$")


def plain_words(text: str) -> list[str]:
    """Lowercase letters-and-digits words, possessives dropped: what anchors are looked up among."""
    return [word.lower() for word in _WORD.findall(_POSSESSIVE.sub("", text))]


def anchors(question: str) -> frozenset[str]:
    """The words of `question` that name something: containing a digit, or capitalised and neither glue
    ("of", "the") nor a stopword that only starts a sentence ("Who", "In"). A question naming nothing (all
    lowercase) is anchored on its content words instead."""
    text, found = _POSSESSIVE.sub("", question), set()
    for match in _WORD.finditer(text):
        word, lower = match.group(), match.group().lower()
        starts_sentence = not text[:match.start()].strip() or _SENTENCE_END.search(text[:match.start()])
        if any(c.isdigit() for c in word) or (word[0].isupper() and lower not in GLUE
                                               and not (starts_sentence and lower in STOPWORDS)):
            found.add(lower)
    return frozenset(found) or frozenset(w for w in plain_words(question) if w not in STOPWORDS)


TYPO_LENGTH = 5  # a name this long with one letter wrong ("Hypocrit") is still that name; a number never is


def anchor_agreement(benchmark_anchors: frozenset[str], words: frozenset[str]) -> tuple[float, frozenset[str]]:
    """The share of the benchmark question's anchors among `words`, and the anchors missing. A name of
    TYPO_LENGTH letters or more is there when a word differs from it by one edit: a misspelt copy names the
    same thing, where a look-alike names another."""
    if not benchmark_anchors:
        return 0.0, frozenset()
    missing = frozenset(anchor for anchor in benchmark_anchors - words
                        if not (len(anchor) >= TYPO_LENGTH and anchor.isalpha()
                                and any(one_edit_apart(anchor, word) for word in words)))
    return 1 - len(missing) / len(benchmark_anchors), missing


def one_edit_apart(a: str, b: str) -> bool:
    """One letter replaced, added, dropped, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((i for i in range(len(short)) if short[i] != long[i]), len(short))
    return short[i:] == long[i + 1:]
