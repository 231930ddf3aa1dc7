# Sourced by the client checks: `pinned_venv NAME REQUIREMENTS` makes (or
# reuses) a venv at ~/.cache/reka/NAME (or $REKA_CACHE_DIR/NAME) with the
# exact pins of REQUIREMENTS, reinstalled when that file changes, and sets VENV.
pinned_venv() {
    VENV="${REKA_CACHE_DIR:-$HOME/.cache/reka}/$1"
    local want
    want=$(sha256sum "$2" | cut -d' ' -f1)
    if [ "$(cat "$VENV/requirements.sha256" 2>/dev/null)" != "$want" ]; then
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet -r "$2"
        echo "$want" >"$VENV/requirements.sha256"
    fi
}
