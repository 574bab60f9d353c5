"""``pipeline console``: the SOC analyst's triage console (a web application).

Its own process, on aiohttp with server-rendered Jinja templates and one
small script of keyboard shortcuts; it reads the alert tables in Postgres and
publishes verdicts on ``{prefix}alert-feedback``. See ``docs/console.md``.

Modules: :mod:`~pipeline.console.app` (application, middlewares, serving),
:mod:`~pipeline.console.views` (pages and forms), :mod:`~pipeline.console.store`
(records and the store interface), :mod:`~pipeline.console.pgstore` (its
Postgres queries), :mod:`~pipeline.console.workflow` (states, verdicts),
:mod:`~pipeline.console.filters` (queue filters, paging cursor),
:mod:`~pipeline.console.identity` (analyst identity, sessions, CSRF),
:mod:`~pipeline.console.feedback` (the verdict outbox relay),
:mod:`~pipeline.console.privacy` (pseudonyms), :mod:`~pipeline.console.charts`
(inline SVG), :mod:`~pipeline.console.cli` (the subcommand).
"""
