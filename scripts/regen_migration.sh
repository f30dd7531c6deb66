#!/usr/bin/env bash
# Development only (before the first release): regenerate the initial migration from the models.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f orchestrator/store/migrations/versions/0001_*.py
.venv/bin/python - "$tmp/gen.db" <<'PY'
import sys
from alembic import command
from orchestrator.store.db import alembic_config, make_engine
command.revision(alembic_config(make_engine(f"sqlite:///{sys.argv[1]}")), message="initial schema",
                 autogenerate=True, rev_id="0001")
PY
.venv/bin/ruff format -q orchestrator/store/migrations
.venv/bin/ruff check -q --fix orchestrator/store/migrations || true
rm -rf "$tmp"
