# Sourced by bin/console and bin/test: make (or reuse) .venv with the pinned requirements.
# $1 is the requirements file to install. Re-installs only when that file changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
REQ="$1"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
STAMP=".venv/.installed-$(basename "$REQ")"
SUM="$(cat "$REQ" requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$SUM" ]; then
  echo "==> installing $REQ into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQ"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$SUM" > "$STAMP"
fi
