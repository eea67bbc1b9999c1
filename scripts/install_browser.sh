#!/usr/bin/env bash
# Install what the browser test of the HTML report needs: Debian's chromium (nothing downloads a browser
# build of its own) and Playwright's Python driver, which is told to use /usr/bin/chromium.
# Usage: scripts/install_browser.sh [PYTHON]   (default: .venv/bin/python of the repo)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${1:-$repo/.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium
fi
/usr/bin/chromium --version

# Only the Python package: `playwright install` (which downloads browsers) is never run.
if ! "$python" -c "import playwright" 2>/dev/null; then
    "$python" -m pip install -c "$repo/constraints.txt" "playwright>=1.40"
fi
"$python" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
