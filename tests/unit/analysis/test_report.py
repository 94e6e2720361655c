"""The analysis report: funnel counts, verb-noun extraction, statistics, the page itself."""

from __future__ import annotations

import base64
import re
from types import SimpleNamespace

import pytest
from handmade_run import EXPECTED, SCRIPT_TEXT, make_run

from selfinstruct.analysis.funnel import compute_funnel
from selfinstruct.analysis.stats import length_samples, sample_tasks, seed_pool, seed_similarities
from selfinstruct.analysis.verbs import root_verb_and_dobj, top_verb_nouns
from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.records import Task
from selfinstruct.run.records_reader import RunRecords, read_records

# -- funnel ---------------------------------------------------------------------------


def test_funnel_counts_every_step_and_reason(tmp_path):
    funnel = RunRecords.load(make_run(tmp_path / "run")).funnel()
    for name, value in EXPECTED.items():
        assert getattr(funnel, name) == value, name
    assert funnel.rejected == 3
    assert funnel.unclassified == 0
    assert funnel.instances_parsed == 7
    assert funnel.parser_drops_by_reason == {"truncated": 1}
    assert funnel.instance_drops_by_reason == {"duplicate": 1}
    assert funnel.task_drops_by_reason == {"no_valid_instances": 1}
    assert funnel.final_classification == 1
    assert funnel.steps() == [("candidates generated", 9), ("instructions kept", 6),
                              ("with instances", 6), ("final tasks", 5)]


def test_funnel_of_a_run_stopped_after_the_bootstrap():
    kept = [{"id": "a"}, {"id": "b"}]
    rejects = [{"reason": "too_short"}, {"reason": "too_similar"}, {"reason": "too_similar"}]
    funnel = compute_funnel(kept, rejects, [{"id": "a", "is_classification": True}], [], [], [],
                            [{"stage": "classify"}])
    assert (funnel.generated, funnel.kept, funnel.rejected) == (5, 2, 3)
    assert list(funnel.rejected_by_reason.items()) == [("too_similar", 2), ("too_short", 1)]
    assert (funnel.classification, funnel.unclassified) == (1, 1)
    assert (funnel.with_instances, funnel.final_tasks, funnel.final_instances) == (0, 0, 0)
    assert funnel.failed_requests_by_stage == {"classify": 1}


def test_reading_a_run_never_changes_it(tmp_path):
    run = make_run(tmp_path / "run")
    path = run / "rejects.jsonl"
    torn = path.read_bytes() + b'{"id": "torn'
    path.write_bytes(torn)
    assert len(read_records(path)) == 3
    assert path.read_bytes() == torn  # the writer's repair is the writer's business


def test_a_directory_without_manifest_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="is not a run directory"):
        RunRecords.load(tmp_path)


# -- verb and noun ----------------------------------------------------------------------


def tok(pos, lemma, dep="", children=()):
    return SimpleNamespace(pos_=pos, lemma_=lemma, text=lemma, dep_=dep, children=list(children))


def test_root_verb_rule_on_hand_made_trees():
    # "Give me a list": the dative "me" comes first; the dobj NOUN is "list"
    give = tok("VERB", "give", children=[tok("PRON", "I", "dative"), tok("NOUN", "list", "dobj")])
    assert root_verb_and_dobj(give) == ("give", "list")
    # a verb whose object is a pronoun: verb only
    assert root_verb_and_dobj(tok("VERB", "do", children=[tok("PRON", "it", "dobj")])) == \
        ("do", None)
    # the root is not a verb: descend into its FIRST child only (the original notebook)
    first_child_verb = tok("AUX", "be", children=[tok("VERB", "write", children=[
        tok("NOUN", "essay", "dobj")]), tok("VERB", "sing")])
    assert root_verb_and_dobj(first_child_verb) == ("write", "essay")
    second_child_verb = tok("AUX", "be", children=[tok("PRON", "what"), tok("VERB", "sing")])
    assert root_verb_and_dobj(second_child_verb) == (None, None)


@pytest.fixture(scope="module")
def nlp():
    from selfinstruct.analysis.verbs import load_nlp

    return load_nlp()  # needs the [analysis] extra: fails, never skips, without it


@pytest.mark.parametrize("text,pair", [
    ("Write a song about the power of nature.", ("write", "song")),
    ("Give me a list of three fruits.", ("give", "list")),
    ("Classify the sentiment of the sentence. Then explain why.", ("classify", "sentiment")),
    ("Generate two poems.", ("generate", "poem")),          # the noun's lemma
    ("What is the capital of France?", None),               # no root verb
    ("Tell me what you think.", None),                      # object is a clause, not a noun
])
def test_verb_noun_of_real_parses(nlp, text, pair):
    from selfinstruct.analysis.verbs import extract_pairs

    assert extract_pairs([text], nlp) == [pair]


def test_top_verbs_and_nouns_are_counted_and_tie_broken_alphabetically():
    pairs = ([("write", "poem")] * 3 + [("write", "story")] * 2 + [("write", "essay"),
             ("write", "letter"), ("write", "song")] + [("give", "list")] * 2 + [None] * 4
             + [("find", "word"), ("create", "list")])
    nodes = top_verb_nouns(pairs, top_verbs=3, nouns_per_verb=4)
    assert [n.verb for n in nodes] == ["write", "give", "create"]
    # write: 5 nouns, the 4 shown are poem 3, story 2, then essay and letter (ties, a-z)
    assert nodes[0].nouns == (("poem", 3), ("story", 2), ("essay", 1), ("letter", 1))
    assert nodes[0].count == 7   # the sum of the nouns shown, as the original sunburst
    assert nodes[2].nouns == (("list", 1),)   # create beats find on the tie, a-z


# -- statistics -------------------------------------------------------------------------


def test_seed_similarity_equals_rouge_score_against_the_nearest_seed():
    from rouge_score import rouge_scorer

    seeds = ["Write a poem about the sea.", "List three fruits.", "Sort the numbers."]
    texts = ["Write a short poem about the deep sea.", "Translate it."]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = [max(scorer.score(t, s)["rougeL"].fmeasure for s in seeds) for t in texts]
    assert seed_similarities(texts, seeds) == expected
    # "write a poem about the sea" in 8 words vs 6: LCS 6, F = 2*6/(8+6) = 0.857...
    assert seed_similarities(texts[:1], seeds[:1])[0] == pytest.approx(12 / 14)


def test_seed_pool_follows_classification_only():
    seeds = [Task("a", "Is it spam?", is_classification=True), Task("b", "Write a poem.",
                                                                     is_classification=False)]
    assert seed_pool(seeds, {"classification_only": True}) == ["Is it spam?"]
    assert seed_pool(seeds, {}) == ["Is it spam?", "Write a poem."]


def test_lengths_count_words_and_leave_empty_inputs_out():
    tasks = [{"instruction": "Write a poem.", "instances": [
        {"input": "", "output": "Roses are red"}, {"input": "a  b\nc", "output": "x"}]}]
    lengths = length_samples(tasks)
    assert lengths.instructions == [3]
    assert lengths.inputs == [3]
    assert lengths.outputs == [3, 1]
    assert lengths.empty_inputs == 1


def test_sample_is_seeded_and_in_run_order():
    tasks = [{"id": str(i)} for i in range(50)]
    a, b = sample_tasks(tasks, 20, seed=5), sample_tasks(tasks, 20, seed=5)
    assert a == b and len(a) == 20
    assert [int(t["id"]) for t in a] == sorted(int(t["id"]) for t in a)
    assert sample_tasks(tasks, 20, seed=6) != a
    assert sample_tasks(tasks[:3], 20, seed=5) == tasks[:3]


# -- the page ---------------------------------------------------------------------------


@pytest.mark.slow
def test_report_page_is_self_contained_and_escapes_generated_text(tmp_path, nlp):
    from selfinstruct.analysis.report import write_report

    run = make_run(tmp_path / "run")
    path = write_report(run, nlp=nlp)
    assert path == run / "report" / "index.html"
    html = path.read_text(encoding="utf-8")
    for name in ("funnel", "sunburst", "rouge_seed", "lengths", "classification"):
        png = (run / "report" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        assert base64.b64encode(png).decode() in html  # embedded, same bytes as the file
    # nothing to fetch: no script, no external or relative resource
    assert "<script" not in html.replace("&lt;script", "")
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert SCRIPT_TEXT not in html
    # the funnel and the manifest are on the page
    for text in ("too_similar", "blacklisted", "no_valid_instances", "duplicate",
                 "smollm2", "ab" * 32, "4,400", "180.0 s"):
        assert text in html, text
    assert "Berkeley Neural Parser" in html


@pytest.mark.slow
def test_report_command_writes_the_page_with_the_review_audit(tmp_path, capsys):
    from selfinstruct.review.store import Review, ReviewStore

    run = make_run(tmp_path / "run")
    ReviewStore(run).save_review(Review("000000.00", "accept", True, False, True))
    assert main(["report", str(run), "--sample", "3"]) == 0
    assert capsys.readouterr().out.strip() == f"report: {run / 'report' / 'index.html'}"
    html = (run / "report" / "index.html").read_text()
    assert html.count('class="task"') == 3
    assert "Quality audit (paper, Table 2)" in html
    assert "100% (1)" in html and "0% (0)" in html


def test_report_without_the_extra_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "spacy" else real(name, *a))
    assert main(["report", str(make_run(tmp_path / "run"))]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "pip install 'selfinstruct[analysis]'" in err
    assert not (tmp_path / "run" / "report").exists()
