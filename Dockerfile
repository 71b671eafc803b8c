# The OHE image used by the Helm chart (helm/ohe): the package and its pinned dependencies,
# the repository root (config/gunicorn.conf.py, Procfile) as working directory, a non-root user.
# Build: docker build -t open-health-exchange:0.1.0 .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp

WORKDIR /app
COPY setup.cfg pyproject.toml constraints.txt README.md ./
COPY ohe ./ohe
COPY config ./config
COPY Procfile ./
RUN pip install -c constraints.txt . \
    && useradd --uid 10001 --no-create-home --home-dir /tmp ohe

USER 10001
EXPOSE 8000 5555 9808
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "-b", "0.0.0.0:8000", "ohe.wsgi:app"]
