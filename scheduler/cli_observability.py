"""``clicktune report --html FILE`` and the worker's ``--metrics-port``: the observability of a process
that serves no app (adapters/observability has the metrics and the dashboard; the app's process serves
them through ``clicktune.plugin.observability``).

Imports are lazy, as in ``cli``: registering the command loads Typer only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from clicktune.adapters.settings import ClicktuneSettings

#: Where `clicktune worker --metrics-port` listens unless --metrics-host says otherwise: this machine
#: only; a scraper on another host needs --metrics-host 0.0.0.0 (or the interface it reaches).
DEFAULT_METRICS_HOST = "127.0.0.1"


def start_metrics_server(settings: ClicktuneSettings, port: int, host: str = DEFAULT_METRICS_HOST) -> None:
    """Serve ``/metrics`` from a daemon thread (prometheus-client's ``start_http_server``): the same
    families as the app's ``/metrics``, read from the same feedback database and registry."""
    from prometheus_client import start_http_server

    from clicktune.adapters.errors import ConfigurationError
    from clicktune.adapters.observability.metrics import metrics_registry
    from clicktune.adapters.observability.state import StateReader

    registry = metrics_registry(StateReader.from_settings(settings))
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve /metrics on {host}:{port} ({exc.strerror or exc}): "
                                 "pick a free --metrics-port") from exc


def write_report(settings: ClicktuneSettings, path: Path) -> Path:
    """Render the dashboard of ``settings``' alias into ``path`` (owner-only, replaced atomically)."""
    from clicktune.adapters.durable import write_atomically
    from clicktune.adapters.errors import ConfigurationError
    from clicktune.adapters.observability.state import StateReader
    from clicktune.scheduler.cli_status import require_setup

    require_setup(settings)  # a wrong --home is an error, not an empty report of a new empty setup
    try:
        from clicktune.adapters.observability.dashboard import DashboardData, render_dashboard
    except ImportError as exc:
        raise ConfigurationError(f"the dashboard needs the ops extra ({exc.name} is missing): "
                                 "pip install 'clicktune[ops]'") from exc
    if not path.parent.is_dir():
        raise ConfigurationError(f"cannot write the report to {path}: folder {path.parent} does not exist")
    reader = StateReader.from_settings(settings)
    try:
        page = render_dashboard(DashboardData.read(reader))
    finally:
        reader.feedback.close()
    write_atomically(path, page)
    return path


def report(html: Annotated[Path, typer.Option("--html", help="Write the dashboard to this HTML file.",
                                              dir_okay=False)]) -> None:
    """Write the dashboard (live version, candidates, challenger phase, click-through) as one HTML file."""
    from clicktune.scheduler.cli import _State

    assert _State.settings is not None
    print(write_report(_State.settings, html.expanduser()))
