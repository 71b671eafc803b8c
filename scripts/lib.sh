# Shared shell helpers for scripts/run and scripts/test (sourced, not executed).

# ensure_venv EXTRA: create .venv and install the package with the EXTRA extras
# (dev or test), pinned by constraints.txt; re-install only when packaging files changed.
ensure_venv() {
  local extra="$1" stamp=".venv/.installed-$1"
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    python3 -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ] \
     || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing Python packages into .venv ($extra)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
      -c constraints.txt -e ".[$extra]" 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -c "import ohe" || { echo "error: installing the package failed" >&2; exit 1; }
    touch "$stamp"
  fi
}
