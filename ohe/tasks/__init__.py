"""Celery tasks: sync chains, devices, webhooks, subscriptions, maintenance and the schedule."""
