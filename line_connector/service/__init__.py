"""The HTTP service door (SPEC 9): a thin WSGI adapter over ``run_action``.

``create_app(config)`` builds the WSGI callable from a loaded ServiceConfig;
``app_from_env()`` loads the file named by ``LINE_CONNECTOR_CONFIG``, for
gunicorn (``gunicorn 'line_connector.service:app_from_env()'``).

Why the imports are lazy: ``import line_connector.service`` must work without
the ``[service]`` extras (waitress, redis, prometheus_client), so the CLI can
say what to install instead of failing on import.
"""

CONFIG_ENV = "LINE_CONNECTOR_CONFIG"


def create_app(config, **options):
    """The WSGI application for ``config`` (see service/app.py)."""
    from .app import create_app as _create

    return _create(config, **options)


def app_from_env(**options):
    """The app for the config file named by ``$LINE_CONNECTOR_CONFIG``."""
    from .app import app_from_env as _from_env

    return _from_env(**options)


__all__ = ["create_app", "app_from_env", "CONFIG_ENV"]
