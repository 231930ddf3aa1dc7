# Sourced by the check scripts: `serve_in_background [ENV=VALUE...] -- ARGS...`
# starts `target/release/reka-host serve ARGS` on a free loopback port, sets
# PORT, PID and LOG (the server's output), stops it and removes the log on
# exit, and waits (up to 2 min) until GET /health answers; if the server dies
# first, prints its log and exits 1.
serve_in_background() {
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    LOG=$(mktemp)
    env "${envs[@]}" ./target/release/reka-host serve --listen "127.0.0.1:$PORT" "$@" >"$LOG" 2>&1 &
    PID=$!
    trap 'kill $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
    for _ in $(seq 1 240); do
        if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; then return 0; fi
        if ! kill -0 "$PID" 2>/dev/null; then cat "$LOG"; exit 1; fi
        sleep 0.5
    done
    echo "the server did not answer /health within 2 minutes" >&2
    tail -n 50 "$LOG" >&2
    exit 1
}
