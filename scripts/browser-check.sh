#!/usr/bin/env bash
# The web UI in a real browser (tests/browser/ui_check.py): headless Chromium
# from Debian's packages (chromium, chromium-driver; installed here when
# missing), driven by Selenium (pip, pinned in tests/browser/requirements.txt,
# in its own venv under ~/.cache/reka). The test starts `reka-host serve` itself
# (the default models, an API key, a temporary --state-dir), restarts it to see
# the arena's votes survive, and saves a screenshot of each state in
# target/browser/. Needs target/release/reka-host and the fetched models.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }
    else
        echo "browser-check: chromium and chromium-driver are needed (apt-get install chromium chromium-driver)" >&2
        exit 1
    fi
fi
source scripts/pinned-venv.sh
pinned_venv browser-venv tests/browser/requirements.txt
mkdir -p target/browser
"$VENV/bin/python" tests/browser/ui_check.py --host ./target/release/reka-host --out target/browser
