"""The review web app (``callqa serve``): queue, call page, overrides, disputes, calibration,
a token-authenticated JSON API and an optional signed webhook. See :func:`create_app`."""

from pipeline.app.main import create_app

__all__ = ["create_app"]
