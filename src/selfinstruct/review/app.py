"""The review web app: browse a run, curate its tasks, audit quality, rate responses blind.

``create_app(DIR, ...)`` returns a FastAPI app; ``selfinstruct review`` serves it with
uvicorn on 127.0.0.1. Pages are rendered on the server from Jinja2 templates with
autoescaping on, so every generated text (instructions, inputs, outputs, completions,
responses) reaches the page as text, never as markup. Defence in depth: a
Content-Security-Policy allows scripts from the app's own ``/static/review.js`` only (no
inline script), and ``/static/`` serves a fixed list of two packaged files: no route reads
a path from the request. Requests must name a loopback host when the app is bound to one
(against DNS rebinding), and a POST from another origin is refused.

=====================================  ===============================================
route                                  page
=====================================  ===============================================
``GET /``                              overview: funnel counts, review progress, Table 2
``GET /instructions``                  kept and rejected instructions; ``q`` (search),
                                       ``show`` (all/kept/rejected), ``reason``,
                                       ``decision`` (unreviewed/accept/reject/edit), ``page``
``GET /instructions/{id}``             one kept instruction: instances, dropped instances,
                                       10 nearest neighbours, raw completions, review form
``POST /instructions/{id}/review``     save accept/reject/edit and the validity marks
``GET /rejected/{n}``                  the n-th line of rejects.jsonl, with its reason
``GET /quality``                       the paper's Table 2 from the reviewer's marks
``GET /rate``, ``GET /rate/{n}``       blind rating, item n of N; keys 1-4 = A-D, n/p
``POST /rate/{n}``                     save the rating, go to item n+1
``GET /rate/summary``                  ratings per model, Cohen's kappa with each judge
=====================================  ===============================================

What it leaves out: accounts and authentication (it is a local, single-user tool), and
editing anything but ``review.sqlite`` and ``human_ratings.jsonl``. (No ``from __future__
import annotations`` here: FastAPI reads the endpoints' annotations at run time.)
"""


from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from selfinstruct.errors import UserError
from selfinstruct.evaluation.ratings import LEVEL_MEANINGS, LEVELS, distributions
from selfinstruct.files import atomic_write_text, dumps
from selfinstruct.records import Instance
from selfinstruct.review.agreement import human_judge_agreement
from selfinstruct.review.rating import RateItem, rating_items
from selfinstruct.review.store import DECISIONS, Review, ReviewStore, quality_summary
from selfinstruct.run.records_reader import RunRecords, read_records

PAGE_SIZE = 100
HUMAN_RATINGS = "human_ratings.jsonl"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
STATIC = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


@dataclass(frozen=True)
class Entry:
    """One row of the instruction list."""

    kind: str        # "kept" | "rejected"
    key: str         # task id, or the line number in rejects.jsonl
    id: str
    text: str
    status: str      # "task", "dropped", "pending" (no instances yet), "rejected"
    reason: str      # why it was rejected or dropped; "" for tasks

    @property
    def url(self) -> str:
        return f"/instructions/{self.key}" if self.kind == "kept" else f"/rejected/{self.key}"


class ReviewState:
    """What the app serves: the run's records (read once), the store, the rating items."""

    def __init__(self, folder: str | Path, reviewer: str, predictions: list[str],
                 judge_ratings: list[str], seed: int):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UserError(f"{self.folder} is not a directory")
        reviewer = reviewer.strip()
        if not reviewer:
            raise UserError("--reviewer must not be empty")
        self.reviewer = reviewer
        self.rater = f"human:{reviewer}"
        self.run = (RunRecords.load(self.folder) if (self.folder / "manifest.json").exists()
                    else None)
        if self.run is None and not predictions:
            raise UserError(f"{self.folder} is not a run directory (no manifest.json); give "
                            "prediction files with --rate to rate responses there")
        self.store = ReviewStore(self.folder)
        self.items: list[RateItem] = []
        if predictions:
            from selfinstruct.review.rating import load_prediction_files

            self.items = rating_items(load_prediction_files(predictions), seed)
        self.models = sorted({item.response.model for item in self.items})
        sources = [Path(p) for p in judge_ratings]
        default = self.folder / "ratings.jsonl"
        if default.exists() and default.resolve() not in {p.resolve() for p in sources}:
            sources.append(default)
        self.judge_records = []
        for path in sources:
            if not path.is_file():
                raise UserError(f"--judge-ratings: file not found: {path}")
            self.judge_records.extend(read_records(path))
        self._index_run()

    def _index_run(self) -> None:
        self.kept: dict[str, dict] = {}
        self.entries: list[Entry] = []
        if self.run is None:
            self.tasks, self.instances, self.labels = {}, {}, {}
            self.dropped: dict[str, list[dict]] = {}
            self.task_drop: dict[str, str] = {}
            return
        run = self.run
        self.kept = {r["id"]: r for r in run.instructions}
        self.tasks = {t["id"]: t for t in run.tasks}
        self.instances = {r["id"]: r for r in run.instances}
        self.labels = {r["id"]: r["is_classification"] for r in run.classifications}
        self.dropped = {}
        self.task_drop = {}
        for r in run.instance_rejects:
            if r.get("task"):
                self.task_drop[r["id"]] = r["reason"]
            else:
                self.dropped.setdefault(r["id"], []).append(r)
        for rid, record in self.kept.items():
            if rid in self.tasks:
                status, reason = "task", ""
            elif rid in self.task_drop:
                status, reason = "dropped", self.task_drop[rid]
            else:
                status, reason = "pending", ""
            self.entries.append(Entry("kept", rid, rid, record["instruction"], status, reason))
        for n, record in enumerate(run.rejects):
            self.entries.append(Entry("rejected", str(n), record["id"], record["text"],
                                      "rejected", record["reason"]))

    def task_ids(self) -> list[str]:
        return [e.key for e in self.entries if e.status == "task"]

    def write_human_ratings(self) -> None:
        records = [r for r in self.store.rating_records() if r["rater"].startswith("human:")]
        atomic_write_text(self.folder / HUMAN_RATINGS, "".join(dumps(r) + "\n" for r in records))


def _templates():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("selfinstruct.review", "templates"),
                      autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.globals.update(LEVELS=LEVELS, LEVEL_MEANINGS=LEVEL_MEANINGS, DECISIONS=DECISIONS)
    return env


def _static_files() -> dict[str, bytes]:
    folder = resources.files("selfinstruct.review") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC}


def _matches(entry: Entry, q: str, show: str, reason: str, decision: str,
             reviews: dict[str, Review]) -> bool:
    if show in ("kept", "rejected") and entry.kind != show:
        return False
    if reason and entry.reason != reason:
        return False
    if decision:
        review = reviews.get(entry.key) if entry.kind == "kept" else None
        if decision == "unreviewed":
            if entry.status != "task" or review is not None:
                return False
        elif review is None or review.decision != decision:
            return False
    return not q or q.lower() in entry.text.lower() or q.lower() == entry.id.lower()


def _form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, last value of each field."""
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def _edited_instances(form: dict[str, str]) -> tuple[Instance, ...]:
    instances, k = [], 0
    while f"input_{k}" in form or f"output_{k}" in form:
        instances.append(Instance(form.get(f"input_{k}", "").replace("\r\n", "\n"),
                                  form.get(f"output_{k}", "").replace("\r\n", "\n")))
        k += 1
    return tuple(instances)


def create_app(folder: str | Path, *, reviewer: str = "anonymous",
               predictions: list[str] | None = None, judge_ratings: list[str] | None = None,
               seed: int = 0, allowed_hosts: list[str] | None = None):
    """The app for ``folder`` (a run directory, or any directory when rating only).

    ``allowed_hosts``: Host header names accepted; default the loopback names. Pass
    ``["*"]`` when serving on a non-loopback address on purpose.
    """
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    state = ReviewState(folder, reviewer, list(predictions or []), list(judge_ratings or []),
                        seed)
    env = _templates()
    static = _static_files()
    app = FastAPI(title="selfinstruct review", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.review = state

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method not in ("GET", "HEAD"):
            # Browsers say where a request comes from in Sec-Fetch-Site; older ones in Origin.
            site = request.headers.get("sec-fetch-site")
            origin = request.headers.get("origin")
            if site is not None:
                cross = site not in ("same-origin", "none")
            else:
                cross = origin is not None and urlsplit(origin).netloc != request.headers.get(
                    "host")
            if cross:
                return PlainTextResponse("refused: a request from another site", 403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOOPBACK_NAMES)

    def render(name: str, **context) -> HTMLResponse:
        context.setdefault("title", "")
        html = env.get_template(name).render(state=state, **context)
        return HTMLResponse(html)

    def kept_or_404(task_id: str) -> dict:
        record = state.kept.get(task_id)
        if record is None:
            raise HTTPException(404, f"no kept instruction with id {task_id!r}")
        return record

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/static/{name}")
    def static_file(name: str):
        if name not in STATIC:
            raise HTTPException(404)
        return Response(static[name], media_type=STATIC[name])

    @app.get("/", response_class=HTMLResponse)
    def overview():
        reviews = state.store.reviews()
        tasks = state.task_ids()
        reviewed = [reviews[t] for t in tasks if t in reviews]
        rated = {(r["model"], r["instance_id"]) for r in state.store.rating_records(state.rater)}
        return render("index.html", title="Overview",
                    funnel=state.run.funnel() if state.run else None,
                    tasks=len(tasks), reviewed=len(reviewed), quality=quality_summary(reviewed),
                    rated=sum((i.response.model, i.response.instance_id) in rated
                              for i in state.items))

    @app.get("/instructions", response_class=HTMLResponse)
    def instructions(q: str = "", show: str = "all", reason: str = "", decision: str = "",
                     page: int = 1):
        reviews = state.store.reviews()
        rows = [e for e in state.entries if _matches(e, q.strip(), show, reason, decision,
                                                      reviews)]
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        number = min(max(1, page), pages)
        shown = rows[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]
        reasons = Counter(e.reason for e in state.entries if e.reason)
        params = {"q": q, "show": show, "reason": reason, "decision": decision}
        return render("list.html", title="Instructions", rows=shown, total=len(rows),
                    reviews=reviews, reasons=sorted(reasons.items()), params=params,
                    page_number=number, pages=pages,
                    prev_url=f"/instructions?{urlencode({**params, 'page': number - 1})}",
                    next_url=f"/instructions?{urlencode({**params, 'page': number + 1})}")

    @app.get("/instructions/{task_id}", response_class=HTMLResponse)
    def instruction(task_id: str, saved: str = ""):
        record = kept_or_404(task_id)
        task = state.tasks.get(task_id)
        review = state.store.get_review(task_id)
        if review is not None and review.decision == "edit" and review.instances is not None:
            form_instruction = review.instruction or record["instruction"]
            form_instances = list(review.instances)
        else:
            form_instruction = record["instruction"]
            form_instances = [Instance(i["input"], i["output"])
                              for i in (task or {}).get("instances", [])]
        tasks = state.task_ids()
        reviews = state.store.reviews()
        after = tasks[tasks.index(task_id) + 1:] if task_id in tasks else tasks
        next_unreviewed = next((t for t in after if t not in reviews), None)
        return render("task.html", title=task_id, record=record, task=task, review=review,
                    generation=state.instances.get(task_id),
                    dropped=state.dropped.get(task_id, []),
                    task_drop=state.task_drop.get(task_id),
                    is_classification=state.labels.get(task_id),
                    form_instruction=form_instruction, form_instances=form_instances,
                    saved=saved if saved in DECISIONS else "",
                    next_unreviewed=next_unreviewed)

    @app.post("/instructions/{task_id}/review")
    async def save_review(task_id: str, request: Request):
        kept_or_404(task_id)
        if task_id not in state.tasks:
            raise HTTPException(409, "only tasks that survived the filters can be reviewed")
        form = _form(await request.body())
        decision = form.get("decision", "")
        if decision not in DECISIONS:
            raise HTTPException(400, f"decision must be one of {', '.join(DECISIONS)}")
        edit = decision == "edit"
        state.store.save_review(Review(
            task_id=task_id, decision=decision,
            valid_instruction="valid_instruction" in form, valid_input="valid_input" in form,
            valid_output="valid_output" in form,
            instruction=form.get("instruction", "").replace("\r\n", "\n").strip() or None
            if edit else None,
            instances=_edited_instances(form) if edit else None,
            reviewer=state.reviewer, note=form.get("note", "").strip()))
        return RedirectResponse(f"/instructions/{task_id}?saved={decision}", status_code=303)

    @app.get("/rejected/{number}", response_class=HTMLResponse)
    def rejected(number: int):
        if state.run is None or not 0 <= number < len(state.run.rejects):
            raise HTTPException(404, f"no rejected instruction number {number}")
        record = state.run.rejects[number]
        request_prefix = record["id"].split(".")[0]
        sibling = next((r for rid, r in state.kept.items()
                        if rid.split(".")[0] == request_prefix), None)
        return render("rejected.html", title=f"rejected {record['id']}", record=record,
                    sibling=sibling)

    @app.get("/quality", response_class=HTMLResponse)
    def quality():
        reviews = state.store.reviews()
        tasks = state.task_ids()
        reviewed = [reviews[t] for t in tasks if t in reviews]
        return render("quality.html", title="Quality", quality=quality_summary(reviewed),
                    tasks=len(tasks))

    def rate_or_404(number: int) -> RateItem:
        if not state.items:
            raise HTTPException(404, "no prediction files were given (--rate)")
        if not 1 <= number <= len(state.items):
            raise HTTPException(404, f"no item {number}; items are 1 to {len(state.items)}")
        return state.items[number - 1]

    def my_ratings() -> dict[tuple[str, str], str]:
        return {(r["model"], r["instance_id"]): r["rating"]
                for r in state.store.rating_records(state.rater)}

    @app.get("/rate")
    def rate_start():
        if not state.items:
            raise HTTPException(404, "no prediction files were given (--rate)")
        mine = my_ratings()
        first = next((i.number for i in state.items
                      if (i.response.model, i.response.instance_id) not in mine), None)
        return RedirectResponse("/rate/summary" if first is None else f"/rate/{first}",
                                status_code=303)

    @app.get("/rate/summary", response_class=HTMLResponse)
    def rate_summary():
        mine = state.store.rating_records(state.rater)
        return render("rate_summary.html", title="Ratings", rated=len(mine),
                    dists=distributions(mine, state.rater, state.models),
                    agreement=human_judge_agreement(mine, state.judge_records))

    @app.get("/rate/{number}", response_class=HTMLResponse)
    def rate_item(number: int):
        item = rate_or_404(number)
        mine = my_ratings()
        return render("rate.html", title=f"Rate {number}", item=item, total=len(state.items),
                    current=mine.get((item.response.model, item.response.instance_id)),
                    rated=len(mine))

    @app.post("/rate/{number}")
    async def rate_save(number: int, request: Request):
        item = rate_or_404(number)
        rating = _form(await request.body()).get("rating", "")
        if rating not in LEVELS:
            raise HTTPException(400, f"rating must be one of {', '.join(LEVELS)}")
        state.store.save_rating(state.rater, item.response.model, item.response.instance_id,
                                rating)
        state.write_human_ratings()
        target = "/rate/summary" if number == len(state.items) else f"/rate/{number + 1}"
        return RedirectResponse(target, status_code=303)

    return app
