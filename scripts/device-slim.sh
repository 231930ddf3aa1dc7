#!/usr/bin/env bash
# The device tool sends the working tree (tracked files plus untracked files
# git does not ignore) and the carried paths, 64 MiB in all. The test fixtures
# alone are ~60 MiB and the device run needs none of them, so around the two
# device calls they are taken out of the index and ignored, then put back:
#
#   scripts/device-slim.sh on     # before the device calls
#   scripts/device-slim.sh off    # right after them (always)
#
# `on` refuses when anything else is staged, so `off` restores exactly; the
# files never leave the disk. `status` says which state the checkout is in.
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE=.git/info/exclude
MARK="# device-slim: test fixtures out of the tree for a device call"
case "${1:-status}" in
on)
    if grep -qF "$MARK" "$EXCLUDE" 2>/dev/null; then echo "already slim"; exit 0; fi
    if ! git diff --cached --quiet; then echo "staged changes present: commit or unstage them first" >&2; exit 1; fi
    git rm -r -q --cached tests/fixtures
    printf '%s\n/tests/fixtures/\n' "$MARK" >>"$EXCLUDE"
    echo "slim: tests/fixtures is out of the index and ignored (run 'scripts/device-slim.sh off' after the device calls)"
    ;;
off)
    if ! grep -qF "$MARK" "$EXCLUDE" 2>/dev/null; then echo "not slim"; exit 0; fi
    python3 - "$EXCLUDE" "$MARK" <<'PY'
import sys
path, mark = sys.argv[1], sys.argv[2]
lines = open(path).read().split("\n")
out, skip = [], False
for l in lines:
    if l == mark:
        skip = True
        continue
    if skip and l == "/tests/fixtures/":
        skip = False
        continue
    out.append(l)
open(path, "w").write("\n".join(out))
PY
    git reset -q -- tests/fixtures
    git status --short tests/fixtures | head -3
    echo "restored: tests/fixtures is tracked again"
    ;;
status)
    if grep -qF "$MARK" "$EXCLUDE" 2>/dev/null; then echo "slim"; else echo "not slim"; fi
    ;;
*)
    echo "usage: $0 on|off|status" >&2
    exit 2
    ;;
esac
