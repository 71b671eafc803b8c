# The two commands of the README, plus helpers. Each installs what it needs into .venv.
.PHONY: run test lint format clean readme

run:  ## run web, worker, beat and the sandboxes on embedded defaults
	scripts/run

test:  ## lint and run the whole test suite (starts PostgreSQL and Redis if needed)
	scripts/test

lint:
	.venv/bin/ruff check ohe tests benchmarks docs && .venv/bin/ruff format --check ohe tests benchmarks docs

format:
	.venv/bin/ruff check --fix ohe tests benchmarks docs && .venv/bin/ruff format ohe tests benchmarks docs

clean:
	rm -rf var .run .pytest_cache

readme:  ## regenerate the README's configuration table from ohe/settings.py
	scripts/readme-settings
