"""The use cases of Updog, over the store, the job queue and the engines.

Each module is one area: :mod:`.funds` (create, read, list, save the draft, publish),
:mod:`.forecasts` (the deterministic forecast of a version), :mod:`.simulations` (plan, run
now, queue as a job, complete, cancel). The HTTP API (:mod:`updog.api`) and the web pages
(:mod:`updog.web`) are adapters over these functions: they parse a request, call a use case,
and render its result or its :class:`~updog.service.errors.ServiceError`.

Functions are synchronous (adapters run them in a worker thread): a function that takes a
``conn`` works inside the caller's transaction, so an adapter can commit the effect together
with something of its own (an idempotency record, a wizard's pending edits); one that takes
the ``database`` opens its own short transactions around work done outside any (an engine
run). Every query is scoped to the caller's organisation: another organisation's fund is
"not found", never "forbidden".
"""
