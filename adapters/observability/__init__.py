"""Observability: Prometheus metrics (``metrics``), the state they and the dashboard report (``state``),
and the dashboard page (``dashboard``, imported on its own: it loads Altair and the Vega renderer).

Nothing here imports the plugin or the scheduler; the plugin serves these over HTTP
(``clicktune.plugin.observability``) and the scheduler from ``clicktune worker --metrics-port`` and
``clicktune report --html``. The package imports nothing itself: the click log imports ``counters``, and
``state`` imports the click log.
"""
