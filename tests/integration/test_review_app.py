"""The review app end to end: the real CLI serves it, a real headless Chromium drives it.

Each test copies the session's real reference run (made by the embedded model), plants a
kept task whose instruction carries a ``<script>`` tag and a rejected candidate with its
own reason, starts ``selfinstruct review`` on a free 127.0.0.1 port, and acts as a
reviewer would: filter, open, mark, edit, rate with the keyboard. Then it checks
``review.sqlite``, ``human_ratings.jsonl`` and the reviewed export.

Chromium is Debian's (``apt-get install -y chromium``), driven by Playwright; set
SELFINSTRUCT_CHROMIUM to use another binary. If it cannot be launched the tests fail.
SELFINSTRUCT_REVIEW_TEST_RUN=DIR uses that finished run instead of the reference run.
Screenshots: in each test's tmp dir, and copies in /tmp/review-screenshot.png and
/tmp/review-rate-screenshot.png.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = (os.environ.get("SELFINSTRUCT_CHROMIUM") or shutil.which("chromium")
            or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCRIPT_TEXT = "<script>window.__pwned = 1</script> Summarize the text in one sentence."
PLANTED_ID = "999999.00"
PLANTED_REASON = "planted_reason"
REJECTED_TEXT = "<b>Bold</b> planted rejected candidate"


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def plant(run: Path) -> None:
    """A kept task with a script in its instruction and markup in its instance; a reject."""
    _append(run / "instructions.jsonl", {
        "id": PLANTED_ID, "instruction": SCRIPT_TEXT, "request_index": 999999, "position": 0,
        "most_similar": [["<script>window.__pwned = 3</script>neighbour", 0.5]],
        "avg_similarity": 0.1, "raw_completion": "</pre><script>window.__pwned = 4</script>"})
    _append(run / "classifications.jsonl", {"id": PLANTED_ID, "instruction": SCRIPT_TEXT,
                                            "is_classification": False, "raw_answer": " No"})
    instances = [{"input": '<img src=x onerror="window.__pwned = 2">The cat sat all day.',
                  "output": "A cat <b>sat</b>."}]
    _append(run / "instances.jsonl", {
        "id": PLANTED_ID, "instruction": SCRIPT_TEXT, "is_classification": False,
        "instances": instances, "dropped": [], "finish_reason": "stop",
        "raw_completion": "<script>window.__pwned = 5</script>"})
    _append(run / "tasks.jsonl", {"id": PLANTED_ID, "instruction": SCRIPT_TEXT,
                                  "instances": instances, "is_classification": False,
                                  "name": None})
    _append(run / "rejects.jsonl", {"id": "999999.01", "stage": "bootstrap",
                                    "reason": PLANTED_REASON, "text": REJECTED_TEXT,
                                    "detail": "<script>window.__pwned = 6</script>"})


def write_predictions(folder: Path) -> tuple[list[str], Path]:
    folder.mkdir()
    paths = []
    for model in ("alpha-model", "beta-model"):
        path = folder / f"{model}_predictions.jsonl"
        path.write_text("".join(json.dumps({
            "id": f"user_oriented_task_{k}", "instruction": f"Question {k}?", "input": "",
            "response": f"Answer {k} <script>window.__pwned = 7</script>", "target": ""}) + "\n"
            for k in range(2)))
        paths.append(str(path))
    judge = folder / "ratings.jsonl"
    judge.write_text("".join(json.dumps({
        "format_version": 1, "model": model, "instance_id": f"user_oriented_task_{k}",
        "rater": "judge:smollm2", "rating": rating, "reasoning": "", "parse_error": None,
        "rated_at": "2026-01-01T00:00:00+00:00"}) + "\n"
        for (model, k), rating in zip([("alpha-model", 0), ("alpha-model", 1),
                                       ("beta-model", 0), ("beta-model", 1)], "ABAD")))
    return paths, judge


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"selfinstruct review exited {proc.returncode}: "
                                 f"{proc.stderr.read()}")
        try:
            with opener.open(url + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"selfinstruct review did not answer on {url} in {timeout} s")


@pytest.fixture
def review_server(request, tmp_path):
    # SELFINSTRUCT_REVIEW_TEST_RUN: a finished run to use instead of the reference run
    # (saves its few minutes while working on the app)
    given = os.environ.get("SELFINSTRUCT_REVIEW_TEST_RUN")
    source = Path(given) if given else request.getfixturevalue("reference_run")[0]
    run = tmp_path / "run"
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("cache.sqlite*", "report"))
    plant(run)
    paths, judge = write_predictions(tmp_path / "preds")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "selfinstruct", "review", str(run), "--port", str(port),
         "--reviewer", "tester", "--rate", *paths, "--judge-ratings", str(judge)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc)
        yield url, run, paths
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        pytest.fail(f"the browser tests need Playwright (pip install playwright): {exc}")
    with sync_playwright() as p:
        try:
            context = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
                headless=True, args=CHROMIUM_ARGS)
        except Error as exc:  # a launch failure must fail the tests, loudly
            pytest.fail(f"could not launch Chromium at {CHROMIUM} "
                        f"(apt-get install -y chromium): {exc}")
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    tab = browser.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    tab.close()


def screenshot(page, tmp_path: Path, name: str, copy_to: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, copy_to)


def no_script_ran(page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined"


def task_ids(run: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (run / "tasks.jsonl").read_text().splitlines()]


def test_browse_filter_and_generated_script_stays_text(review_server, page):
    url, run, _ = review_server
    page.goto(url + "/instructions")
    rows = page.locator("tr.entry")
    kept = sum(1 for _ in (run / "instructions.jsonl").read_text().splitlines())
    rejected = sum(1 for _ in (run / "rejects.jsonl").read_text().splitlines())
    assert rows.count() == kept + rejected
    # typing in the search box is typing, not a keyboard shortcut
    page.fill("#q", "")
    page.type("#q", "np")
    assert page.url == url + "/instructions"
    # filter by the planted rejection reason
    page.fill("#q", "")
    page.select_option("#show", "rejected")
    page.select_option("#reason", PLANTED_REASON)
    page.click("#apply")
    page.wait_for_url("**reason=planted_reason**")
    assert rows.count() == 1
    assert rows.first.locator("td.text").inner_text() == REJECTED_TEXT  # markup shown as text
    assert page.locator("tr.entry b").count() == 0
    rows.first.locator("td.text a").click()
    assert page.locator("#reject-reason").inner_text() == PLANTED_REASON
    no_script_ran(page)
    # search finds the planted task; its page shows the script as text and runs none of it
    page.goto(url + "/instructions?q=" + urllib.request.quote("<script>"))
    assert rows.count() == 1 and rows.first.locator("td.text").inner_text() == SCRIPT_TEXT
    rows.first.locator("td.text a").click()
    page.wait_for_url(f"**/instructions/{PLANTED_ID}")
    assert page.locator("#instruction-text").inner_text() == SCRIPT_TEXT
    assert "<script>window.__pwned = 3</script>neighbour" in \
        page.locator("#neighbours").inner_text()
    assert page.locator("#raw-completion").inner_text() == \
        "</pre><script>window.__pwned = 4</script>"
    assert page.locator("main img").count() == 0
    assert page.locator("main script, main b").count() == 0
    no_script_ran(page)
    # a real task shows its instances, neighbours and raw completion
    first = task_ids(run)[0]
    page.goto(f"{url}/instructions/{first}")
    assert page.locator("#instances tr").count() >= 2
    assert page.locator("#neighbours tr").count() == 11   # header + 10 nearest
    assert page.locator("#raw-completion").inner_text().strip()


def test_curate_marks_edits_and_the_reviewed_export(review_server, page, tmp_path):
    from selfinstruct.prompts import PromptTemplates
    from selfinstruct.records import Task
    from selfinstruct.review.store import ReviewStore, apply_reviews
    from selfinstruct.stages.export import export

    url, run, _ = review_server
    real = [t for t in task_ids(run) if t != PLANTED_ID]
    assert len(real) >= 2, "the reference run should have at least two tasks"
    edited_id, accepted_id = real[0], real[1]

    page.goto(url + "/instructions?decision=unreviewed")
    page.locator(f'tr[data-id="{edited_id}"] td.text a').click()
    page.wait_for_url(f"**/instructions/{edited_id}")
    for box in ("#valid_instruction", "#valid_input", "#valid_output"):
        page.check(box)
    page.click("details.edit summary")
    page.fill("#edit-instruction", "Edited instruction <em>by hand</em>.")
    page.fill("#edit-output-0", "Edited output.")
    page.click("#save-edit")
    page.wait_for_url("**saved=edit")
    assert page.locator("#saved").inner_text().startswith("Saved: edit.")
    assert page.locator("#current-decision").inner_text() == "edit"
    assert page.input_value("#edit-instruction") == "Edited instruction <em>by hand</em>."

    page.goto(f"{url}/instructions/{accepted_id}")
    page.check("#valid_instruction")
    page.click("#accept")
    page.wait_for_url("**saved=accept")

    page.goto(f"{url}/instructions/{PLANTED_ID}")
    page.click("#reject")
    page.wait_for_url("**saved=reject")
    assert page.locator("#instruction-text").inner_text() == SCRIPT_TEXT
    no_script_ran(page)
    screenshot(page, tmp_path, "review.png", "/tmp/review-screenshot.png")

    page.goto(url + "/quality")
    assert page.locator("#q-valid_instruction").inner_text() == "67% (2)"
    assert page.locator("#q-valid_input").inner_text() == "33% (1)"
    assert page.locator("#q-valid_output").inner_text() == "33% (1)"
    page.goto(url + "/instructions?decision=reject")
    assert page.locator("tr.entry").count() == 1

    reviews = ReviewStore(run).reviews()
    assert {k: r.decision for k, r in reviews.items()} == {
        edited_id: "edit", accepted_id: "accept", PLANTED_ID: "reject"}
    assert reviews[edited_id].instruction == "Edited instruction <em>by hand</em>."
    assert reviews[edited_id].instances[0].output == "Edited output."
    assert reviews[accepted_id].reviewer == "tester"

    tasks = [Task.from_json(json.loads(line))
             for line in (run / "tasks.jsonl").read_text().splitlines()]
    target = export(apply_reviews(run, tasks), "alpaca", tmp_path / "reviewed.json",
                    PromptTemplates.load(), 0)
    rows = json.loads(target.read_text())
    assert SCRIPT_TEXT not in {r["instruction"] for r in rows}
    edited = [r for r in rows if r["instruction"] == "Edited instruction <em>by hand</em>."]
    assert edited and edited[0]["output"] == "Edited output."
    original = next(t for t in tasks if t.id == edited_id)
    assert original.instruction not in {r["instruction"] for r in rows}
    assert len(rows) == sum(len(t.instances) for t in tasks if t.id != PLANTED_ID)


def test_rate_blind_with_the_keyboard(review_server, page, tmp_path):
    from selfinstruct.review.agreement import cohen_kappa
    from selfinstruct.review.rating import load_prediction_files, rating_items
    from selfinstruct.review.store import ReviewStore

    url, run, paths = review_server
    items = rating_items(load_prediction_files(paths), seed=0)
    page.goto(url + "/rate")
    page.wait_for_url("**/rate/1")
    html = page.content()
    assert "alpha-model" not in html and "beta-model" not in html
    assert "<script>window.__pwned = 7</script>" in page.locator("#rate-response").inner_text()
    screenshot(page, tmp_path, "rate.png", "/tmp/review-rate-screenshot.png")

    page.keyboard.press("1")
    page.wait_for_url("**/rate/2")
    page.keyboard.press("2")
    page.wait_for_url("**/rate/3")
    page.keyboard.press("p")
    page.wait_for_url("**/rate/2")
    assert page.locator("#current-rating").inner_text() == "Your rating: B"
    page.keyboard.press("n")
    page.wait_for_url("**/rate/3")
    page.keyboard.press("4")
    page.wait_for_url("**/rate/4")
    page.keyboard.press("3")
    page.wait_for_url("**/rate/summary")
    no_script_ran(page)

    letters = ["A", "B", "D", "C"]
    stored = {(r["model"], r["instance_id"]): r["rating"]
              for r in ReviewStore(run).rating_records("human:tester")}
    expected = {(i.response.model, i.response.instance_id): x for i, x in zip(items, letters)}
    assert stored == expected
    lines = [json.loads(line) for line in (run / "human_ratings.jsonl").read_text().splitlines()]
    assert {(r["model"], r["instance_id"]): r["rating"] for r in lines} == expected
    assert {r["rater"] for r in lines} == {"human:tester"}

    judge = dict(zip([("alpha-model", "user_oriented_task_0"),
                      ("alpha-model", "user_oriented_task_1"),
                      ("beta-model", "user_oriented_task_0"),
                      ("beta-model", "user_oriented_task_1")], "ABAD"))
    keys = sorted(expected)
    kappa = cohen_kappa([expected[k] for k in keys], [judge[k] for k in keys])
    assert page.locator("#agreement td.kappa").inner_text() == f"{kappa:.3f}"
    assert page.locator("#rated-count").inner_text().startswith("4 of 4 responses rated")
