"""Evaluation: score alerts against the simulator's labels, baselines, reports.

- :mod:`simbank.evaluate.score` turns labelled incidents plus alert revisions
  into a :class:`~simbank.evaluate.score.Scorecard` (pure, no I/O).
- :mod:`simbank.evaluate.baselines` holds two simple detectors run on the same
  enriched events, so the pipeline's gain can be measured.
- :mod:`simbank.evaluate.report` writes ``report.json``, ``summary.md`` and
  ``chart.png``.
"""
