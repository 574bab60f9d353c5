"""Evaluation: score alerts against the simulator's labels, baselines, reports.

- :mod:`pipeline.evaluate.score` turns labelled incidents plus alert revisions
  into a :class:`~pipeline.evaluate.score.Scorecard` (pure, no I/O).
- :mod:`pipeline.evaluate.baselines` holds two simple detectors run on the same
  enriched events, so the pipeline's gain can be measured.
- :mod:`pipeline.evaluate.report` writes ``report.json``, ``summary.md`` and
  ``chart.png``.
"""
