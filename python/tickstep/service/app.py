"""The HTTP service: a FastAPI application, served by uvicorn (``tickstep serve``).

Batches follow the asynchronous request-reply pattern: ``POST /batches`` answers 202
with the batch id and a ``Location``; ``GET /batches/{id}`` reports progress (and
``/events`` streams it as server-sent events); ``/results`` has the rows when done.

Security: every request but ``GET /health`` needs ``Authorization: Bearer <token>``.
Only registered strategies run (by name); values are JSON scalars checked against the
declared types; a request may name a store only inside the data directory; the server
binds to loopback unless a token is configured explicitly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import hashlib
import hmac
import io
import ipaddress
import json
import multiprocessing
import secrets
import sys
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sse_starlette.sse import EventSourceResponse

from tickstep.service.batches import BatchManager, QueueFull
from tickstep.service.models import (
    BatchAccepted,
    BatchRequest,
    BatchStatus,
    Problem,
    check_batch,
    inside,
)
from tickstep.service.runs import FINAL_STATES, RunsDB, default_runs_path, since_text
from tickstep.service.runs import database_url as database_url_of

__all__ = ["ServiceSettings", "create_app", "run_server"]

TOKEN_SETTING = "token_sha256"
#: How long the symbols of a database server's store are trusted without asking again.
LISTING_SECONDS = 5.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the service is configured with (see ``tickstep serve --help``)."""

    store: str | None
    data_dir: Path | None
    results: str
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    dask_address: str | None = None
    workers: int | None = None
    max_batches: int = 2
    max_queue: int = 100
    max_jobs: int = 100_000
    max_symbols: int = 5_000
    max_body: int = 1 << 20
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, *, store: str | None, data_dir: str | None, results: str | None,
              host: str = "127.0.0.1", token: str | None = None, **rest: Any) -> ServiceSettings:
        """Checked settings; ValueError says what is wrong."""
        if not _is_loopback(host) and not token:
            raise ValueError(f"refusing to listen on {host}: outside loopback, set TICKSTEP_TOKEN "
                             "to the bearer token clients must send")
        is_url = store is not None and store.startswith(("postgresql://", "postgres://"))
        if store is not None and not is_url and not Path(store).is_file():
            raise ValueError(f"--data {store!r}: no such store file")
        directory = Path(data_dir).resolve() if data_dir else (
            Path(store).resolve().parent if store and not is_url else None)
        if results is None:
            if store is None or is_url:
                raise ValueError("give --results DB: where to keep the runs")
            results = str(default_runs_path(Path(store).resolve()))
        return cls(store=(store if is_url or store is None else str(Path(store).resolve())),
                   data_dir=directory, results=results, host=host, token=token, **rest)


# ---- authentication and body size, before any routing ------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _Guard:
    """ASGI middleware: the bearer token on every request but /health, and a body limit."""

    def __init__(self, app: Any, *, token_digest: Any, max_body: int) -> None:
        self.app = app
        self.token_digest = token_digest  # callable -> hex digest
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] != "/health":
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                return await _plain(send, 401, "missing bearer token: send "
                                    "'Authorization: Bearer <token>'", bearer=True)
            if not hmac.compare_digest(_digest(given.strip()), self.token_digest()):
                return await _plain(send, 401, "wrong bearer token", bearer=True)
            length = headers.get(b"content-length")
            if length is not None and int(length or 0) > self.max_body:
                return await _plain(send, 413, f"request body of {int(length):,} bytes; the "
                                    f"limit is {self.max_body:,}")
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _plain(send, 413, f"request body over the limit of {self.max_body:,} bytes")


class _BodyTooLarge(Exception):
    pass


async def _plain(send: Any, status: int, detail: str, bearer: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---- the application ----------------------------------------------------------------------


class _State:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.db = RunsDB(settings.results)
        self.manager = BatchManager(self.db, max_batches=settings.max_batches,
                                    max_queue=settings.max_queue, workers=settings.workers,
                                    dask_address=settings.dask_address)
        self.details: cf.ProcessPoolExecutor | None = None
        self.token_digest = ""

    def details_pool(self) -> cf.ProcessPoolExecutor:
        if self.details is None:  # spawned: a clean process, no threads forked
            self.details = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return self.details


def setup_token(db: RunsDB, token: str | None) -> str | None:
    """The digest clients' tokens are checked against. An explicit token is used as is;
    otherwise one is generated at the first start and returned (to print once), and
    only its hash is kept in the runs database."""
    if token:
        return None
    if db.setting(TOKEN_SETTING):
        return None
    new = secrets.token_urlsafe(32)
    db.set_setting(TOKEN_SETTING, _digest(new))
    return new


def create_app(settings: ServiceSettings) -> FastAPI:
    """The FastAPI application for ``settings`` (started by `run_server`)."""
    state = _State(settings)
    if settings.token:
        state.token_digest = _digest(settings.token)
    else:
        fresh = setup_token(state.db, None)
        if fresh is not None:
            print(f"tickstep serve: API token (shown once, keep it): {fresh}", flush=True)
        state.token_digest = state.db.setting(TOKEN_SETTING) or ""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        interrupted = state.manager.start()
        if interrupted:
            print(f"tickstep serve: marked {len(interrupted)} unfinished batch(es) interrupted: "
                  + ", ".join(interrupted), file=sys.stderr, flush=True)
        try:
            yield
        finally:
            state.manager.stop()
            if state.details is not None:
                state.details.shutdown(wait=False, cancel_futures=True)
            state.db.close()

    app = FastAPI(title="tickstep", version=_version(), lifespan=lifespan,
                  description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    app.state.tickstep = state

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return JSONResponse({"detail": exc.detail()}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, without echoing inputs (which may be large).
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    def store_for(data: str | None) -> str:
        if data is None:
            if settings.store is None:
                raise Problem(("body", "data"), "this service has no default store: name one")
            return settings.store
        if settings.data_dir is None:
            raise Problem(("body", "data"), "this service takes no store names")
        return str(inside(settings.data_dir, data, ("body", "data")))

    listings: dict[str, tuple[Any, list[str]]] = {}

    def symbols_of_store(store: str) -> list[str]:
        """The store's symbols, read again only when its file changed (a database
        server's listing is kept for a few seconds)."""
        from tickstep.data import open_store

        path = Path(store)
        if path.is_file():
            st = path.stat()
            stamp: Any = (st.st_mtime_ns, st.st_size)
        else:
            stamp = int(time.monotonic() // LISTING_SECONDS)
        seen = listings.get(store)
        if seen is not None and seen[0] == stamp:
            return seen[1]
        with open_store(store, read_only=True) as opened:
            symbols = [str(s) for s in opened.symbols().index]
        listings[store] = (stamp, symbols)
        return symbols

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness; needs no token."""
        return {"status": "ok", "version": _version()}

    @app.post("/batches", status_code=202, response_model=BatchAccepted, tags=["batches"])
    def submit(body: BatchRequest, response: Response,
               idempotency_key: str | None = Header(None, max_length=200)) -> BatchAccepted:
        """Queue a batch: a registered strategy over symbols x parameter sets."""
        store = store_for(body.data)
        request = body.model_dump(mode="json")
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        if idempotency_key:
            seen = state.db.batch_by_key(idempotency_key)
            if seen is not None:
                return _accepted(seen, response, digest)
        _, jobs = check_batch(body, store_symbols=symbols_of_store(store),
                              max_jobs=settings.max_jobs, max_symbols=settings.max_symbols)
        try:
            state.manager.check_room()
        except QueueFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": "5"}) from None
        batch_id = uuid.uuid4().hex[:16]
        import sqlalchemy.exc

        try:
            state.db.create_batch(batch_id, body.strategy, {**request, "store": store},
                                  total=jobs, idempotency_key=idempotency_key,
                                  request_hash=digest)
        except sqlalchemy.exc.IntegrityError:  # the same key, submitted at the same moment
            seen = state.db.batch_by_key(idempotency_key or "")
            if seen is None:
                raise
            return _accepted(seen, response, digest)
        try:
            state.manager.submit(batch_id)
        except QueueFull as exc:
            state.db.update_batch(batch_id, status="failed", error=str(exc), finished=True)
            raise HTTPException(429, str(exc), headers={"Retry-After": "5"}) from None
        return _accepted(state.db.batch(batch_id), response, digest)

    @app.get("/batches", response_model=list[BatchStatus], tags=["batches"])
    def list_batches(status: Literal["queued", "running", "done", "failed", "cancelled",
                                     "interrupted"] | None = None,
                     strategy: str | None = None, since: str | None = None,
                     limit: int = Query(100, ge=1, le=10_000)) -> list[BatchStatus]:
        """Stored batches, newest first: of a ``status``, a ``strategy``, or submitted
        ``since`` a date, an ISO time, ``today`` or a span back (``7d``, ``12h``)."""
        try:
            when = since_text(since) if since else None
        except ValueError as exc:
            raise Problem(("query", "since"), str(exc)) from None
        found = state.db.query_batches(status=status, strategy=strategy, since=when,
                                       limit=limit)
        troubles = state.db.troubles_of([b["batch_id"] for b in found])
        return [_status(b, troubles.get(b["batch_id"], (0, 0, 0))) for b in found]

    def batch_or_404(batch_id: str) -> dict[str, Any]:
        batch = state.db.batch(batch_id)
        if batch is None:
            raise HTTPException(404, f"no batch {batch_id!r}")
        return batch

    @app.get("/batches/{batch_id}", response_model=BatchStatus, tags=["batches"])
    def status(batch_id: str) -> BatchStatus:
        """Status, jobs done of total, rate and time left."""
        return _status_of(batch_or_404(batch_id), state.db)

    @app.get("/batches/{batch_id}/events", tags=["batches"])
    async def events(batch_id: str, request: Request) -> EventSourceResponse:
        """Progress as server-sent events (``progress``, then one final ``end``)."""
        await anyio.to_thread.run_sync(batch_or_404, batch_id)

        async def stream() -> Any:
            last = None
            while True:
                batch = await anyio.to_thread.run_sync(state.db.batch, batch_id)
                now = _status_of(batch, state.db).model_dump(mode="json")
                final = now["status"] in FINAL_STATES
                if now != last:
                    yield {"event": "end" if final else "progress", "data": json.dumps(now)}
                    last = now
                if final or await request.is_disconnected():
                    return
                await asyncio.sleep(0.2)

        return EventSourceResponse(stream(), ping=15)

    @app.get("/batches/{batch_id}/results", tags=["batches"],
             responses={200: {"content": {"application/json": {}, "text/csv": {},
                                          "application/vnd.apache.parquet": {}}}})
    def results(batch_id: str, accept: str = Header("application/json"),
                symbols: str | None = Query(None, description="Only this symbol group's rows."),
                top: int | None = Query(None, ge=1, description="Only each symbol group's "
                                        "best, ranked by the batch's maximize.")) -> Response:
        """The batch's rows (finished ones so far), in job order: JSON, CSV or Parquet by
        ``Accept``. A batch maximizing several statistics adds each row's ``Pareto Rank``
        within its symbol group, among the rows finished so far. ``top``: each group's
        best rows only, best first (as ``run_batch`` ranks them: by ``maximize``, or by
        Pareto rank then the first objective; ties in job order), the groups in job
        order."""
        import numpy as np

        from tickstep.batch.objectives import PARETO_RANK, Objective
        from tickstep.service.rows import jsonable, runs_frame

        batch = batch_or_404(batch_id)
        kind = _negotiate(accept)
        frame = runs_frame(state.db.batch_runs(batch_id, symbols=symbols), state.db.stat_columns)
        objective = Objective(batch["request"].get("maximize", "Sharpe Ratio"))
        values = objective.values_of(frame) if objective.several else None
        if top is not None:  # ranked (several: with their Pareto Rank), each group's best
            groups = {label: k for k, label in enumerate(dict.fromkeys(frame["symbols"]))}
            best = objective.rank(frame, values).groupby("symbols", sort=False).head(top)
            frame = best.iloc[np.argsort(best["symbols"].map(groups).to_numpy(),
                                         kind="stable")]
        elif objective.several:
            frame[PARETO_RANK] = objective.pareto_ranks(frame["symbols"].to_numpy(), values)
        if kind != "json":
            return _table(frame, kind)
        rows = jsonable(frame.reset_index().to_dict(orient="records"))
        return JSONResponse({"batch_id": batch_id, "status": batch["status"],
                             "jobs_total": batch["jobs_total"], "rows": rows})

    def walk_forward_or_409(batch_id: str) -> dict[str, Any]:
        batch = batch_or_404(batch_id)
        if not batch["request"].get("walk_forward"):
            raise HTTPException(409, f"batch {batch_id} is not a walk-forward (its request "
                                "has no walk_forward)")
        return batch

    @app.get("/batches/{batch_id}/walk-forward", tags=["batches"])
    def walk_forwards(batch_id: str) -> dict[str, Any]:
        """A walk-forward batch's walk-forwards (those finished so far), one per symbol
        group: its windows (bounds, the set chosen, the objective in and out of sample,
        ``job``: its test run's row) and the stitched out-of-sample statistics."""
        batch = walk_forward_or_409(batch_id)
        return {"batch_id": batch_id, "status": batch["status"],
                "walk_forwards": state.db.walk_forwards_of(batch_id)}

    @app.get("/batches/{batch_id}/report", response_class=HTMLResponse, tags=["batches"])
    async def batch_report(batch_id: str, symbols: str | None = None,
                           n_splits: int = Query(16, description="Blocks of days for the "
                                                 "probability of backtest overfitting."),
                           reps: int = Query(1000, description="The reality check's draws."),
                           top: int = Query(20, ge=1, le=1000,
                                            description="The best sets listed."),
                           x: str | None = None, y: str | None = None,
                           benchmark_batch: str | None = Query(
                               None, description="The reality check against the group's "
                               "run in this batch (as GET /batches/{id}/reality-check "
                               "takes it), not cash.")) -> Response:
        """One symbol group's HTML report (``symbols``: its label; needed when the batch
        has more than one group). A walk-forward's: from walking it forward again (its
        train grids answered from the results cache). Any other batch's: its optimisation
        report from the stored runs (the best ``top`` sets, the heatmap over parameters
        ``x`` and ``y``, the Pareto front of two objectives, and, when the batch kept its
        returns, the probability of backtest overfitting and the reality check, against
        cash or ``benchmark_batch``'s run of the group)."""
        from tickstep.service.luck import NoBenchmark, optimization_report
        from tickstep.service.walkforwards import groups_of
        from tickstep.service.walkforwards import walk_forward_report as report_of

        batch = await anyio.to_thread.run_sync(batch_or_404, batch_id)
        request = batch["request"]
        if request.get("walk_forward"):
            if benchmark_batch is not None:
                raise Problem(("query", "benchmark_batch"), "benchmark_batch: a walk-forward's "
                              "report has no reality check (its sets were chosen before each "
                              "test window)")
            groups = await anyio.to_thread.run_sync(
                lambda: groups_of(request, symbols_of_store(request["store"])))
        else:
            check_judging(n_splits=n_splits, reps=reps)
            if benchmark_batch is not None:
                await anyio.to_thread.run_sync(benchmark_batch_or_refused, benchmark_batch)
            groups = await anyio.to_thread.run_sync(state.db.batch_groups, batch_id)
            if not groups:
                raise HTTPException(409, f"batch {batch_id} is {batch['status']} with no run "
                                    "finished: nothing to report yet")
        symbols = group_named(batch_id, list(groups), symbols)
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "report.html")
            loop = asyncio.get_running_loop()
            if request.get("walk_forward"):
                await loop.run_in_executor(state.details_pool(), report_of, request,
                                           groups[symbols], path)
            else:
                call = functools.partial(optimization_report, state.db.url, batch_id, path,
                                         symbols=symbols, n_splits=n_splits, reps=reps,
                                         top=top, x=x, y=y, benchmark_batch=benchmark_batch)
                try:
                    await loop.run_in_executor(state.details_pool(), call)
                except NoBenchmark as exc:
                    raise Problem(("query", "benchmark_batch"), str(exc)) from None
                except (KeyError, ValueError) as exc:  # x or y not a parameter, say
                    raise Problem(("query",), _message(exc)) from None
            html = Path(path).read_text(encoding="utf-8")
        return HTMLResponse(html)

    def group_named(batch_id: str, groups: list[str], symbols: str | None) -> str:
        """The group a request names (``symbols``), or the batch's only one."""
        if symbols is None and len(groups) == 1:
            return groups[0]
        if symbols not in groups:
            shown = ", ".join(groups[:20])
            raise Problem(("query", "symbols"), f"{symbols!r} is not a group of batch "
                          f"{batch_id}: name one of {shown}")
        return symbols

    def done_with_returns_or_409(batch_id: str) -> dict[str, Any]:
        """A batch that finished and kept its runs' daily returns: what judging needs."""
        batch = batch_or_404(batch_id)
        request = batch["request"]
        if request.get("walk_forward"):
            raise HTTPException(409, f"batch {batch_id} is a walk-forward: judge its grids "
                                "as batches of their own (GET /batches/{id}/walk-forward "
                                "has its windows)")
        if not request.get("returns"):
            raise HTTPException(409, f"batch {batch_id} kept no daily returns: submit it "
                                "again with \"returns\": true (its runs are answered from the "
                                "results cache only if they kept them)")
        if batch["status"] != "done":
            raise HTTPException(409, f"batch {batch_id} is {batch['status']} "
                                f"({batch['jobs_done']} of {batch['jobs_total']} jobs): a "
                                "choice is judged among all its sets, when it is done")
        return batch

    def benchmark_batch_or_refused(batch_id: str) -> None:
        """A reality check's ``benchmark_batch``: a batch done with its returns, else
        refused naming the option (unknown: 422; not judgeable yet: 409, as its own)."""
        try:
            done_with_returns_or_409(batch_id)
        except HTTPException as exc:
            if exc.status_code == 404:
                raise Problem(("query", "benchmark_batch"),
                              f"benchmark_batch: {exc.detail}") from None
            raise HTTPException(exc.status_code, f"benchmark_batch: {exc.detail}") from None

    async def judged(batch_id: str, symbols: str | None, judge: Any,
                     **options: Any) -> dict[str, Any]:
        """A judging request's answer: ``judge`` (of `tickstep.service.luck`) of a batch
        done with its returns, each group or the one named, in the worker process."""
        batch = await anyio.to_thread.run_sync(done_with_returns_or_409, batch_id)
        if symbols is not None:
            group_named(batch_id, await anyio.to_thread.run_sync(state.db.batch_groups,
                                                                 batch_id), symbols)
        call = functools.partial(judge, state.db.url, batch_id, symbols=symbols, **options)
        groups = await asyncio.get_running_loop().run_in_executor(state.details_pool(), call)
        return {"batch_id": batch_id, "status": batch["status"], "groups": groups}

    @app.get("/batches/{batch_id}/overfitting", tags=["batches"])
    async def overfitting(batch_id: str, symbols: str | None = None,
                          n_splits: int = Query(16, description="S, the blocks of days: "
                                                "even, at least 2 (C(S, S/2) splits)."),
                          splits: bool = Query(False, description="Also each split's "
                                               "logit and the chosen set's Sharpe Ratio "
                                               "in and out of sample.")) -> dict[str, Any]:
        """Each symbol group's probability of backtest overfitting (CSCV: the share of
        in/out-of-sample splits in which the set best in sample ranked in the lower half
        out of sample; `tickstep.significance.backtest_overfitting`). Needs a batch done
        with ``"returns": true``."""
        from tickstep.service.luck import batch_overfitting

        check_judging(n_splits=n_splits)
        return await judged(batch_id, symbols, batch_overfitting, n_splits=n_splits,
                            splits=splits)

    @app.get("/batches/{batch_id}/reality-check", tags=["batches"])
    async def reality(batch_id: str, symbols: str | None = None,
                      benchmark: float | None = Query(None, description="The daily return "
                                                      "a set must beat: 0 (the default) is "
                                                      "cash; a daily risk-free rate."),
                      benchmark_batch: str | None = Query(None, description="Or a batch "
                                                          "whose run of each group's "
                                                          "symbols a set must beat (a "
                                                          "buy_and_hold batch of the same "
                                                          "symbols and span, done with "
                                                          "\"returns\": true)."),
                      reps: int = Query(1000, description="The bootstrap's draws."),
                      block: int | None = Query(None, description="The stationary "
                                                "bootstrap's mean block length in days "
                                                "(default: the square root of the days)."),
                      size: float = Query(0.05, description="StepM's familywise error "
                                          "rate, in (0, 1)."),
                      seed: int = Query(0, description="The draws' seed: the same one, the "
                                        "same p-values.")) -> dict[str, Any]:
        """Each symbol group's reality check: does any set beat ``benchmark`` (or the
        group's run in ``benchmark_batch``), allowing for all of them having been tried
        (Hansen's SPA p-values), and which do (Romano and Wolf's StepM at ``size``);
        `tickstep.significance.reality_check`. Needs a batch done with ``"returns":
        true``."""
        from tickstep.service.luck import batch_reality_check

        if benchmark is not None and benchmark_batch is not None:
            raise Problem(("query", "benchmark_batch"), "benchmark_batch with benchmark: "
                          "one benchmark, a daily return or a batch's runs")
        check_judging(reps=reps, benchmark=benchmark or 0.0, block=block, size=size,
                      seed=seed)
        if benchmark_batch is not None:
            await anyio.to_thread.run_sync(benchmark_batch_or_refused, benchmark_batch)
        return await judged(batch_id, symbols, batch_reality_check,
                            benchmark=benchmark or 0.0, benchmark_batch=benchmark_batch,
                            reps=reps, block=block, size=size, seed=seed)

    @app.delete("/batches/{batch_id}", response_model=BatchStatus, tags=["batches"])
    def cancel(batch_id: str) -> BatchStatus:
        """Cancel: its workers stop at once; finished jobs stay stored."""
        batch_or_404(batch_id)
        state.manager.cancel(batch_id)
        return _status_of(batch_or_404(batch_id), state.db)

    @app.post("/batches/{batch_id}/resume", status_code=202, response_model=BatchStatus,
              tags=["batches"])
    def resume(batch_id: str) -> BatchStatus:
        """Run an interrupted (or cancelled, or failed) batch again: jobs already done are
        answered from the results cache."""
        batch = batch_or_404(batch_id)
        try:
            if not state.manager.resume(batch_id):
                raise HTTPException(409, f"batch {batch_id} is {batch['status']}: only "
                                    "interrupted, cancelled or failed batches resume")
        except QueueFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": "5"}) from None
        return _status_of(batch_or_404(batch_id), state.db)

    @app.get("/runs", tags=["runs"])
    def list_runs(strategy: str | None = None, batch: str | None = None,
                  since: str | None = None, order_by: str | None = None,
                  ascending: bool = False,
                  limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        """Stored runs: newest first, or best first by a statistic (``order_by``)."""
        from tickstep.service.rows import jsonable

        try:
            when = since_text(since) if since else None
        except ValueError as exc:
            raise Problem(("query", "since"), str(exc)) from None
        try:
            found = state.db.query_runs(strategy=strategy, batch_id=batch, since=when,
                                        order_by=order_by, ascending=ascending, limit=limit)
        except ValueError as exc:
            raise Problem(("query", "order_by"), str(exc)) from None
        return jsonable(found)

    @app.get("/runs/summary", tags=["runs"])
    def summary(by: str = "strategy", since: str | None = None,
                order_by: str = "Return [%]", limit: int = Query(100, ge=1, le=10_000)
                ) -> list[dict[str, Any]]:
        """Per strategy (or batch): runs, the average of a statistic, average
        calculation time -- e.g. the top strategies this week by average return."""
        from tickstep.service.rows import jsonable

        try:
            when = since_text(since) if since else None
        except ValueError as exc:
            raise Problem(("query", "since"), str(exc)) from None
        try:
            return jsonable(state.db.summary(by=by, since=when, order_by=order_by, limit=limit))
        except ValueError as exc:
            raise Problem(("query", "order_by" if "order" in str(exc) else "by"), str(exc)) from None

    def run_or_404(run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        run = state.db.run(run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r}")
        return run, batch_or_404(run["batch_id"])

    def detail_spec(run: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        from tickstep.service.details import symbols_of

        request = batch["request"]
        if request.get("source") == "cli" or "store" not in request:
            raise HTTPException(409, f"run {run['run_id']} was not made by this service")
        spec = {"store": request["store"], "strategy": batch["strategy"],
                "params": run["parameters"], "symbols": symbols_of(request, run["symbols"]),
                "start": request.get("start"), "end": request.get("end"),
                "options": request.get("options") or {},
                "regular_hours": request.get("regular_hours"),
                "timeframe": request.get("timeframe")}
        if request.get("walk_forward"):
            # A window's test run: that window's bars, trading from its start.
            from tickstep.service.walkforwards import window_spec

            found = [w for wf in state.db.walk_forwards_of(batch["batch_id"])
                     for w in wf["windows"] if w["job"] == run["job"]]
            if not found:
                raise HTTPException(409, f"run {run['run_id']} is no window of a walk-forward")
            spec.update(window_spec(request, found[0]))
        return spec

    @app.get("/runs/{run_id}", tags=["runs"])
    async def run_detail(run_id: str, details: bool = True) -> dict[str, Any]:
        """One run: its stored row and statistics, and (``details``) its trades, equity
        curve, breakdown by symbol and the account's interest on its cash, from running
        that backtest again in a worker process."""
        from tickstep.service.details import run_details
        from tickstep.service.rows import jsonable

        run, batch = await anyio.to_thread.run_sync(run_or_404, run_id)
        out = jsonable({**run, "stats": state.db.stats_of(run)})
        if details and run["status"] == "ok":
            # A walk-forward window's spec reads the database: off the event loop.
            spec = await anyio.to_thread.run_sync(detail_spec, run, batch)
            loop = asyncio.get_running_loop()
            full = await loop.run_in_executor(state.details_pool(), run_details, spec)
            out.update({k: full[k] for k in ("trades", "equity", "symbols", "interest")})
        return out

    @app.get("/runs/{run_id}/returns", tags=["runs"],
             responses={200: {"content": {"application/json": {}, "text/csv": {},
                                          "application/vnd.apache.parquet": {}}}})
    def run_returns(run_id: str, accept: str = Header("application/json")) -> Response:
        """The run's daily returns (kept when its batch asked, ``"returns": true``): each
        trading day's last bar (UTC) and its return, a fraction, as
        `tickstep.Result.daily_returns`; JSON (with ``periods_per_year``, the
        annualisation of the run's statistics), CSV or Parquet by ``Accept``."""
        from tickstep.service.luck import annualised

        run, batch = run_or_404(run_id)
        kind = _negotiate(accept)
        if not batch["request"].get("returns"):
            raise HTTPException(409, f"run {run_id}'s batch kept no daily returns (submit it "
                                "with \"returns\": true)")
        daily = state.db.daily_returns([run_id]).get(run_id)
        if daily is None:
            raise HTTPException(409, f"run {run_id} has no daily returns: its status is "
                                f"{run['status']}")
        frame = daily.rename_axis("day_end").to_frame("return")
        if kind != "json":
            return _table(frame, kind)
        return JSONResponse({"run_id": run_id, "day_end": [t.isoformat() for t in daily.index],
                             "return": daily.tolist(), "periods_per_year":
                             annualised(daily, batch["request"]).attrs["periods_per_year"]})

    @app.get("/runs/{run_id}/report", response_class=HTMLResponse, tags=["runs"])
    async def run_report(run_id: str) -> Response:
        """The run's HTML report."""
        from tickstep.results import Result
        from tickstep.service.details import run_details

        run, batch = await anyio.to_thread.run_sync(run_or_404, run_id)
        if not hasattr(Result, "report"):
            raise HTTPException(501, "this build of tickstep has no HTML report "
                                "(Result.report is not there yet)")
        spec = await anyio.to_thread.run_sync(detail_spec, run, batch)
        with tempfile.TemporaryDirectory() as tmp:
            spec["report"] = str(Path(tmp) / "report.html")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(state.details_pool(), run_details, spec)
            html = Path(spec["report"]).read_text(encoding="utf-8")
        return HTMLResponse(html)

    @app.get("/strategies", tags=["data"])
    def list_strategies() -> list[dict[str, Any]]:
        """Registered strategies: names, parameters with defaults, docs."""
        from tickstep.service.options import describe_strategies
        from tickstep.service.rows import jsonable

        return jsonable(describe_strategies())

    @app.get("/symbols", tags=["data"])
    def list_symbols(data: str | None = None) -> list[dict[str, Any]]:
        """Symbols of the store with their date ranges, bar counts and metadata."""
        from tickstep.data import open_store
        from tickstep.service.rows import jsonable

        try:
            store = store_for(data)
        except Problem as exc:
            raise Problem(("query", "data"), exc.msg) from None
        with open_store(store, read_only=True) as opened:
            listing = opened.symbols()
        return jsonable(listing.reset_index().to_dict(orient="records"))

    return app


def check_judging(*, n_splits: int | None = None, **reality: Any) -> None:
    """A request's options for judging a batch (``n_splits``; the reality check's
    ``reps``, ``benchmark``, ``block``, ``size``, ``seed``) by `tickstep.significance`'s
    rules: a 422 naming the one refused."""
    from tickstep import ConfigError
    from tickstep.significance import check_reality_options, check_splits

    try:
        if n_splits is not None:
            check_splits(n_splits)
        if reality:
            check_reality_options(**reality)
    except ConfigError as exc:
        text = str(exc)
        raise Problem(("query", text.split("=", 1)[0]), text) from None


def _message(exc: Exception) -> str:
    """An exception's own words (a KeyError's without its quotes)."""
    return str(exc.args[0]) if exc.args else str(exc)


def _accepted(batch: dict[str, Any], response: Response, digest: str) -> BatchAccepted:
    if batch.get("request_hash") and batch["request_hash"] != digest:
        raise HTTPException(409, "Idempotency-Key was used before with a different request")
    location = f"/batches/{batch['batch_id']}"
    response.headers["Location"] = location
    return BatchAccepted(batch_id=batch["batch_id"], status=batch["status"],
                         jobs_total=batch["jobs_total"], location=location)


def _status_of(batch: dict[str, Any], db: RunsDB) -> BatchStatus:
    # Failures and rejections are in each run's row; the status says how many runs had
    # any, as `run_batch` warns once for a batch rather than per run.
    return _status(batch, db.troubles(batch["batch_id"]))


def _status(batch: dict[str, Any], troubles: tuple[int, int, int]) -> BatchStatus:
    """A batch's status, with `RunsDB.troubles` of its runs."""
    rate = left = None
    failed, runs_rejecting, orders_rejected = troubles
    started = batch.get("started")
    if started is not None and batch["status"] in ("running", "done"):
        end = batch.get("finished") or datetime.now(UTC)
        seconds = (end - started).total_seconds()
        if seconds > 0 and batch["jobs_done"]:
            rate = batch["jobs_done"] / seconds
            left = (batch["jobs_total"] - batch["jobs_done"]) / rate
    return BatchStatus(
        batch_id=batch["batch_id"], strategy=batch["strategy"], status=batch["status"],
        jobs_done=batch["jobs_done"], jobs_total=batch["jobs_total"],
        jobs_cached=batch["jobs_cached"], jobs_failed=failed, runs_with_rejections=runs_rejecting,
        orders_rejected=orders_rejected, rate=rate, seconds_left=left, error=batch["error"],
        created=batch["created"], started=started, finished=batch.get("finished"))


_MEDIA = {
    "application/json": "json", "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
    "application/parquet": "parquet", "*/*": "json", "application/*": "json", "text/*": "csv",
}


def _table(frame: Any, kind: str) -> Response:
    """A table as CSV or Parquet (``kind``, as `_negotiate` chose)."""
    if kind == "csv":
        return Response(frame.to_csv(), media_type="text/csv")
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return Response(buffer.getvalue(), media_type="application/vnd.apache.parquet")


def _negotiate(accept: str) -> str:
    """The first acceptable of the client's media types, by quality, else 406."""
    choices = []
    for i, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        choices.append((-q, i, media.lower()))
    for q, _, media in sorted(choices):
        if q < 0 and media in _MEDIA:
            return _MEDIA[media]
    raise HTTPException(406, "results come as application/json, text/csv or "
                        f"application/vnd.apache.parquet; Accept was {accept!r}")


def _version() -> str:
    from tickstep import __version__

    return __version__


def _redacted(target: str) -> str:
    import sqlalchemy

    if "://" not in target:
        return target
    return sqlalchemy.make_url(database_url_of(target)).render_as_string(hide_password=True)


def run_server(settings: ServiceSettings) -> None:
    """Serve ``settings`` with uvicorn until interrupted."""
    import uvicorn

    app = create_app(settings)
    guarded = _Guard(app, token_digest=lambda: app.state.tickstep.token_digest,
                     max_body=settings.max_body)
    print(f"tickstep serve: http://{settings.host}:{settings.port} (OpenAPI page at /docs); "
          f"runs in {_redacted(settings.results)}", flush=True)
    uvicorn.run(guarded, host=settings.host, port=settings.port, log_level="warning")
