#!/usr/bin/env bash
# Creates .venv with a supported Python (3.10-3.12) and installs LocalChat's packages.
#   scripts/setup.sh        runtime packages
#   scripts/setup.sh dev    also test tools, and Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3.12 python3.11 python3.10 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    # 2>/dev/null: a pyenv shim exists for versions it has but not enabled, and says so.
    if "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "LocalChat needs Python 3.10, 3.11 or 3.12 (set PYTHON=/path/to/python)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "dev" ]; then
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing Debian's chromium for the browser tests"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
    else
      echo "browser tests need Chromium at /usr/bin/chromium: sudo apt-get install chromium" >&2
      exit 1
    fi
  fi
else
  .venv/bin/python -m pip install -q -r requirements.txt
fi
