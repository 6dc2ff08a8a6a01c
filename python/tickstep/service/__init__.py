"""The backtest service: batches submitted over HTTP, watched, and kept in a database.

``tickstep serve --data market.duckdb`` starts it (see `tickstep.service.app`). Pieces:

* `tickstep.service.runs` -- the stored batches and runs (SQLite or PostgreSQL);
* `tickstep.service.models` -- the requests and answers, checked by pydantic;
* `tickstep.service.batches` -- the queue of batches and the runner processes;
* `tickstep.service.runner` -- one batch in a worker process (`tickstep.batch.run_batch`);
* `tickstep.service.app` -- the FastAPI application and its settings.

The web framework is imported only by `app`: the command line's ``runs`` and ``batch
--results`` use the stored runs without it.
"""
