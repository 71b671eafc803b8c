"""Celery entry point: ``celery -A ohe.worker worker | beat | flower``.

Two lines, as in Flask's Celery example: the Flask app owns the configuration, and the Celery
app it built runs every task inside that Flask app's context.
"""

from ohe.app import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
