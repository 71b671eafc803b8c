"""gunicorn settings for the web process (bind address comes from the command line).

Workers are separate processes: Prometheus counters from each are merged through
PROMETHEUS_MULTIPROC_DIR (set in the environment; wiped before start by scripts/run and by the
Helm chart's emptyDir).
"""

workers = 2
threads = 4
worker_class = "gthread"
timeout = 60
graceful_timeout = 25
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
accesslog = None
errorlog = "-"
capture_output = False
forwarded_allow_ips = "*"
# gunicorn >= 25.1 opens a control socket for `gunicornc` at $XDG_RUNTIME_DIR/gunicorn.ctl or
# $HOME/.gunicorn/gunicorn.ctl. Nothing here uses it; it fails on a read-only root filesystem,
# and every gunicorn of one user on one host would share (and replace) the same path.
control_socket_disable = True


from ohe.observability.logging import gunicorn_logger_class  # noqa: E402

logger_class = gunicorn_logger_class  # the master's own lines in OHE_LOG_FORMAT too


def child_exit(server, worker):
    """Drop a recycled worker's live gauges from the merged view (prometheus_client's advice);
    its counters stay, so totals never go backwards."""
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
