"""The web console: server-rendered pages for catalog teams, served by ``catalogflow
api`` on the API's port. Pages read through the same read-model queries and write
through the same route functions as the JSON API, so a click sends exactly the event
the API (and the CLI) would. One module per page under ``pages/``, listed in
``pages.PAGES``; templates under ``templates/``, assets (htmx, one script, one style
sheet) under ``static/``: nothing is fetched from elsewhere at run time."""

from __future__ import annotations

from catalogflow.console.app import install

__all__ = ["install"]
