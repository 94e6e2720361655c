"""The review app through HTTP (no browser): pages, escaping, safety, storage."""

from __future__ import annotations

import json

import pytest
from handmade_run import SCRIPT_TEXT, make_predictions, make_run

from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.review.app import CSP, create_app
from selfinstruct.review.rating import load_prediction_files, rating_items
from selfinstruct.review.store import ReviewStore

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run")


@pytest.fixture
def client(run, tmp_path):
    from fastapi.testclient import TestClient

    paths, judge = make_predictions(tmp_path / "preds")
    app = create_app(run, reviewer="ann", predictions=paths, judge_ratings=[str(judge)])
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        c.paths = paths
        yield c


def test_every_page_renders_with_the_security_headers(client):
    for url in ("/", "/instructions", "/instructions?show=rejected", "/instructions/000000.00",
                "/instructions/000002.00", "/rejected/0", "/quality", "/rate/1",
                "/rate/summary"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP


def test_generated_text_is_escaped_everywhere(client):
    pages = [client.get("/instructions").text, client.get("/instructions/000001.01").text]
    for html in pages:
        assert SCRIPT_TEXT not in html
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    detail = pages[1]
    assert "<img src=x" not in detail and "&lt;img src=x onerror=" in detail
    assert "A cat <b>sat</b>" not in detail and "A cat &lt;b&gt;sat&lt;/b&gt;" in detail
    assert "<script>x()</script>" not in detail          # the raw completion
    assert "<i>tag</i>" not in detail                     # a neighbour
    rate = "".join(client.get(f"/rate/{n}").text for n in range(1, 5))
    assert "<script>b()</script>" not in rate
    # the only script element is the app's own file
    assert detail.count("<script") == 1 and '<script src="/static/review.js" defer>' in detail


def test_search_and_filters(client):
    def ids(query):
        html = client.get(f"/instructions?{query}").text
        return sorted({part.split('"')[0] for part in html.split('data-id="')[1:]})

    assert ids("") == ["000000.00", "000000.01", "000000.02", "000001.00", "000001.01",
                       "000001.02", "000002.00", "000002.01", "000002.02"]
    assert ids("show=rejected") == ["000000.02", "000001.02", "000002.02"]
    assert ids("reason=too_similar") == ["000000.02", "000001.02"]
    assert ids("reason=no_valid_instances") == ["000002.00"]
    assert ids("q=POEM") == ["000000.00", "000000.02"]
    assert ids("q=poem&show=kept") == ["000000.00"]
    assert ids("q=%3Cscript%3E") == ["000001.01"]
    assert len(ids("decision=unreviewed")) == 5


def test_review_is_stored_and_shown(client, run):
    response = client.post("/instructions/000000.01/review", data={
        "decision": "edit", "valid_instruction": "on", "valid_output": "on",
        "instruction": "Classify the sentiment of the review.\r\n",
        "input_0": "Review: I loved it.", "output_0": "positive",
        "input_1": "", "output_1": "", "note": "fixed"})
    assert response.status_code == 303
    assert response.headers["location"] == "/instructions/000000.01?saved=edit"
    review = ReviewStore(run).get_review("000000.01")
    assert review.decision == "edit" and review.reviewer == "ann" and review.note == "fixed"
    assert (review.valid_instruction, review.valid_input, review.valid_output) == \
        (True, False, True)
    assert review.instruction == "Classify the sentiment of the review."
    assert len(review.instances) == 2  # the emptied one is removed on export, not here
    client.post("/instructions/000000.00/review", data={"decision": "reject"})
    page = client.get("/instructions/000000.01?saved=edit").text
    assert "Saved: edit" in page and "000001.00" in page  # next task to review
    quality = client.get("/quality").text
    assert 'id="q-valid_instruction">50% (1)' in quality
    assert 'id="q-valid_input">0% (0)' in quality
    assert "1 rejected, 1 edited" in quality
    assert client.get("/instructions?decision=unreviewed").text.count('data-id="') == 3


def test_bad_review_requests(client):
    assert client.post("/instructions/000000.00/review",
                       data={"decision": "maybe"}).status_code == 400
    assert client.post("/instructions/nope/review",
                       data={"decision": "accept"}).status_code == 404
    # a kept instruction that lost its instances is not a task
    assert client.post("/instructions/000002.00/review",
                       data={"decision": "accept"}).status_code == 409


def test_rating_is_blind_stored_and_compared_with_the_judge(client, run):
    items = rating_items(load_prediction_files(client.paths), seed=0)
    for n in range(1, 5):
        html = client.get(f"/rate/{n}").text
        assert "alpha-model" not in html and "beta-model" not in html
        assert items[n - 1].response.response.split(" <")[0] in html
    assert client.get("/rate").headers["location"] == "/rate/1"
    letters = ["A", "B", "A", "D"]
    for n, letter in enumerate(letters, start=1):
        response = client.post(f"/rate/{n}", data={"rating": letter})
        assert response.status_code == 303
        assert response.headers["location"] == ("/rate/summary" if n == 4 else f"/rate/{n + 1}")
    client.post("/rate/2", data={"rating": "C"})  # re-rating replaces
    letters[1] = "C"
    stored = {(r["model"], r["instance_id"]): r["rating"]
              for r in ReviewStore(run).rating_records("human:ann")}
    assert stored == {(i.response.model, i.response.instance_id): letter
                      for i, letter in zip(items, letters)}
    lines = [json.loads(line) for line in (run / "human_ratings.jsonl").read_text().splitlines()]
    assert sorted((r["model"], r["instance_id"], r["rating"]) for r in lines) == \
        sorted((*key, value) for key, value in stored.items())
    assert client.get("/rate").headers["location"] == "/rate/summary"
    summary = client.get("/rate/summary").text
    assert "judge:smollm2" in summary and 'class="n kappa"' in summary
    assert client.post("/rate/1", data={"rating": "E"}).status_code == 400
    assert client.get("/rate/5").status_code == 404


def test_cross_site_posts_and_foreign_hosts_are_refused(client, run):
    evil = client.post("/instructions/000000.00/review", data={"decision": "reject"},
                       headers={"origin": "http://evil.example"})
    assert evil.status_code == 403
    for site in ("cross-site", "same-site"):
        assert client.post("/rate/1", data={"rating": "A"},
                           headers={"sec-fetch-site": site}).status_code == 403
    assert client.post("/rate/1", data={"rating": "A"},
                       headers={"origin": "null"}).status_code == 403
    assert ReviewStore(run).reviews() == {}
    assert ReviewStore(run).rating_records() == []
    # what a browser sends for the app's own forms
    assert client.post("/rate/1", data={"rating": "A"}, headers={
        "sec-fetch-site": "same-origin", "origin": BASE}).status_code == 303
    same = client.post("/instructions/000000.00/review", data={"decision": "accept"},
                       headers={"origin": BASE})
    assert same.status_code == 303
    assert client.get("/", headers={"host": "rebind.example:8000"}).status_code == 400


def test_no_route_serves_files(client):
    assert client.get("/static/review.css").status_code == 200
    for url in ("/static/app.py", "/static/..%2Fapp.py", "/static/../store.py",
                "/static/%2Fetc%2Fpasswd", "/manifest.json", "/tasks.jsonl",
                "/review.sqlite", "/docs", "/openapi.json"):
        assert client.get(url).status_code == 404, url


def test_a_directory_that_is_not_a_run_needs_prediction_files(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        create_app(tmp_path)
    paths, _ = make_predictions(tmp_path / "preds")
    app = create_app(tmp_path / "preds", predictions=paths)  # rating only
    assert app.state.review.run is None


def test_review_without_the_extra_says_how_to_install_it(run, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["review", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "pip install 'selfinstruct[review]'" in err


def test_templates_and_static_files_are_installed_with_the_package():
    from importlib import resources

    root = resources.files("selfinstruct")
    for name in ("base.html", "task.html", "rate.html", "list.html"):
        assert (root / "review" / "templates" / name).is_file(), name
    for name in ("review.js", "review.css"):
        assert (root / "review" / "static" / name).is_file(), name
    assert (root / "analysis" / "templates" / "report.html").is_file()


def test_a_port_in_use_is_one_line_and_exit_2(run, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["review", str(run), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
