"""Metrics, JSON logging, request context and health checks."""
