"""WSGI entry point for gunicorn: ``gunicorn -c config/gunicorn.conf.py ohe.wsgi:app``."""

from ohe.app import create_app

app = create_app()
