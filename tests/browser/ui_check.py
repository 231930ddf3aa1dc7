#!/usr/bin/env python3
"""The web UI in headless Chromium (Debian's chromium + chromedriver, driven by
Selenium), against a real `reka-host serve` of the repository's spin.toml with
the default models (smollm2-135m, smollm2-omni), an API key and a temporary
--state-dir. Run by scripts/browser-check.sh.

Playground (/): the page loads with no console errors once the key is typed
into its field; a prompt streams an answer into the page (the text is seen
growing); an image sent to the multimodal model is answered and counted (more
prompt tokens than the same words alone, by the API); Stop cancels the stream
(the server's reka:requests_cancelled_total goes up).
Arena (/arena): two rounds in the page (both answers stream, names hidden until
the vote, then shown), 28 more scripted through its API (30 in all);
wrong votes get OpenAI-style errors; the votes survive a restart of the
server; the leaderboard page shows both models with intervals.
A screenshot of each state goes to --out.
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

KEY = "ui-check-key"
TEXT_MODEL = "smollm2-135m"
MEDIA_MODEL = "smollm2-omni"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """`reka-host serve` on a free port, its output in a log file."""

    def __init__(self, host, state_dir, log_path, port=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [host, "serve", "--listen", f"127.0.0.1:{self.port}", "--manifest", "spin.toml",
             "--state-dir", state_dir, "--api-key", KEY],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}); see {log_path}")
            try:
                urllib.request.urlopen(self.base + "/health", timeout=2)
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise SystemExit("the server did not answer /health in 3 minutes")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()

    def call(self, method, path, body=None, key=KEY):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def json(self, method, path, body=None, key=KEY, want=200):
        status, text = self.call(method, path, body, key)
        assert status == want, f"{method} {path}: {status} {text}"
        return json.loads(text)

    def cancelled(self):
        _, text = self.call("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith("reka:requests_cancelled_total "):
                return float(line.split()[1])
        raise AssertionError("no reka:requests_cancelled_total in /metrics")


def png(path, w=96, h=64):
    """A small RGB gradient with a dark square, written as a PNG."""
    rows = b""
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            dark = 30 <= x < 60 and 20 <= y < 44
            row += bytes((20, 20, 20) if dark else (255 * x // w, 120, 255 * y // h))
        rows += bytes(row)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def browser(profile):
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", f"--user-data-dir={profile}", "--window-size=1280,900"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))


def console_errors(d):
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def by_id(d, ident):
    return d.find_element(By.ID, ident)


def wait(d, cond, timeout=240, what="condition"):
    return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda _: cond(), message=what)


def last_answer(d):
    answers = d.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant")
    return answers[-1] if answers else None


def send_and_watch(d, prompt):
    """Sends `prompt`; returns the lengths the answer's text went through and
    the finished answer element."""
    before = len(d.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant"))
    box = by_id(d, "prompt")
    box.clear()
    box.send_keys(prompt)
    by_id(d, "send").click()
    wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#messages .msg.assistant")) > before, 30, "an answer")
    lengths = []
    deadline = time.time() + 300
    while time.time() < deadline:
        msg = last_answer(d)
        text = msg.find_element(By.CSS_SELECTOR, ".content").text
        if not lengths or lengths[-1] != len(text):
            lengths.append(len(text))
        if msg.get_attribute("data-done") == "true":
            return lengths, msg
        time.sleep(0.03)
    raise AssertionError("the answer did not finish in 5 minutes")


def set_field(d, ident, value):
    el = by_id(d, ident)
    el.clear()
    el.send_keys(str(value))


def playground(d, server, out, image):
    d.get(server.base + "/")
    # Without the key the model list is refused; typing it into the field loads it.
    set_field(d, "api-key", KEY)
    wait(d, lambda: len(Select(by_id(d, "model")).options) >= 2, 30, "the model list")
    d.get_log("browser")  # the refused first listing, before the key
    d.refresh()
    wait(d, lambda: len(Select(by_id(d, "model")).options) >= 2, 30, "the model list after reload")
    assert by_id(d, "api-key").get_attribute("value") == KEY, "the key is kept"
    models = [o.get_attribute("value") for o in Select(by_id(d, "model")).options]
    assert TEXT_MODEL in models and MEDIA_MODEL in models and "all-minilm-l6-v2" not in models, models
    errors = console_errors(d)
    assert not errors, f"console errors on load: {errors}"
    d.save_screenshot(os.path.join(out, "playground-loaded.png"))

    # 1. A prompt streams into the page.
    Select(by_id(d, "model")).select_by_value(TEXT_MODEL)
    d.find_element(By.CSS_SELECTOR, "#settings summary").click()
    set_field(d, "temperature", 0)
    set_field(d, "max-tokens", 64)
    lengths, msg = send_and_watch(d, "Write a short poem about the sea.")
    assert len(lengths) >= 4 and lengths == sorted(lengths) and lengths[-1] > 20, f"text did not grow: {lengths}"
    stats = msg.find_element(By.CSS_SELECTOR, ".stats")
    completion = int(stats.get_attribute("data-completion-tokens"))
    assert completion > 0 and int(stats.get_attribute("data-prompt-tokens")) > 0
    print(f"playground: text streamed through {len(lengths)} lengths to {lengths[-1]} chars, {completion} tokens")
    d.save_screenshot(os.path.join(out, "playground-streamed.png"))

    # 2. An image to the multimodal model, answered and counted.
    by_id(d, "new-chat").click()
    Select(by_id(d, "model")).select_by_value(MEDIA_MODEL)
    by_id(d, "file").send_keys(image)
    wait(d, lambda: len(by_id(d, "attachments").find_elements(By.CSS_SELECTOR, "*")) > 0, 30, "the attachment preview")
    words = "What is in this picture?"
    _, msg = send_and_watch(d, words)
    answer = msg.find_element(By.CSS_SELECTOR, ".content").text
    with_image = int(msg.find_element(By.CSS_SELECTOR, ".stats").get_attribute("data-prompt-tokens"))
    alone = server.json("POST", "/v1/chat/completions", {
        "model": MEDIA_MODEL, "max_tokens": 1,
        "messages": [{"role": "user", "content": [{"type": "text", "text": words}]}]})["usage"]["prompt_tokens"]
    assert answer.strip() and with_image > alone, f"image not counted: {with_image} vs {alone} tokens ({answer!r})"
    print(f"playground: image answered ({len(answer)} chars); prompt {with_image} tokens vs {alone} for the words alone")
    d.save_screenshot(os.path.join(out, "playground-image.png"))

    # 3. Stop cancels the request on the server.
    by_id(d, "new-chat").click()
    Select(by_id(d, "model")).select_by_value(TEXT_MODEL)
    set_field(d, "max-tokens", 3000)
    before = server.cancelled()
    set_field(d, "prompt", "Count from 1 to 1000, one number per line.")
    by_id(d, "send").click()
    wait(d, lambda: last_answer(d) is not None and len(last_answer(d).find_element(By.CSS_SELECTOR, ".content").text) > 30,
         60, "some streamed text")
    wait(d, lambda: by_id(d, "stop").is_enabled(), 5, "an enabled Stop")
    by_id(d, "stop").click()
    wait(d, lambda: "stopped" in by_id(d, "status").text.lower(), 10, "the stopped status")
    wait(d, lambda: server.cancelled() > before, 20, "the server counting the cancel")
    print(f"playground: stop cancelled the request (reka:requests_cancelled_total {before} -> {server.cancelled()})")
    d.save_screenshot(os.path.join(out, "playground-stopped.png"))
    errors = console_errors(d)
    assert not errors, f"console errors in the playground: {errors}"


def arena_round(d, prompt, vote):
    promptbox = by_id(d, "arena-prompt")
    promptbox.clear()
    promptbox.send_keys(prompt)
    by_id(d, "arena-send").click()
    for side in ("left", "right"):
        wait(d, lambda s=side: by_id(d, s).get_attribute("data-done") == "true", 300, f"the {side} answer")
    assert by_id(d, "left-name").text == "" and by_id(d, "right-name").text == "", "names shown before the vote"
    texts = [d.find_element(By.CSS_SELECTOR, f"#{s} .content").text for s in ("left", "right")]
    assert all(t.strip() for t in texts), f"an empty answer: {texts}"
    by_id(d, f"vote-{vote}").click()
    wait(d, lambda: by_id(d, "left-name").text != "" and by_id(d, "right-name").text != "", 20, "the names")
    names = {by_id(d, "left-name").text, by_id(d, "right-name").text}
    assert names == {TEXT_MODEL, MEDIA_MODEL}, names


def arena(d, server, out):
    d.get(server.base + "/arena")
    wait(d, lambda: by_id(d, "arena-send").is_enabled(), 30, "the arena page")
    set_field(d, "arena-max-tokens", 40)
    arena_round(d, "Name three fruits.", "left")
    d.save_screenshot(os.path.join(out, "arena-voted.png"))
    by_id(d, "next-round").click()
    arena_round(d, "What colour is the sky?", "tie")
    errors = console_errors(d)
    assert not errors, f"console errors in the arena: {errors}"

    # The rest of a 30-vote session through the arena's own API (27, and one
    # more with the wrong votes below).
    votes = ["left", "right", "right", "tie", "bothbad", "right", "left"]
    for i in range(27):
        battle = server.json("POST", "/arena/api/battle", {})
        assert sorted(battle["models"]) == sorted([TEXT_MODEL, MEDIA_MODEL]), battle
        # The multimodal model is preferred in most votes, whichever side it is on.
        choice = votes[i % len(votes)]
        if battle["models"][0] == MEDIA_MODEL and choice in ("left", "right"):
            choice = "right" if choice == "left" else "left"
        shown = server.json("POST", "/arena/api/vote", {"id": battle["id"], "vote": choice})
        assert [shown["left"], shown["right"]] == battle["models"], shown
    # Wrong votes: OpenAI-style errors, nothing recorded.
    battle = server.json("POST", "/arena/api/battle", {})
    server.json("POST", "/arena/api/vote", {"id": battle["id"], "vote": "both"}, want=400)
    server.json("POST", "/arena/api/vote", {"id": "b-nonexistent", "vote": "left"}, want=404)
    server.json("POST", "/arena/api/vote", {"id": battle["id"], "vote": "left"})
    err = server.json("POST", "/arena/api/vote", {"id": battle["id"], "vote": "right"}, want=409)
    assert err["error"]["code"] == "already_voted", err
    server.json("POST", "/arena/api/battle", {}, key=None, want=401)
    board = server.json("GET", "/arena/leaderboard.json")
    assert board["votes"] == 30, board["votes"]
    return board


def leaderboard(d, server, out, before):
    board = server.json("GET", "/arena/leaderboard.json")
    assert board == before, "the leaderboard changed across the restart"
    rows = {m["model"]: m for m in board["models"]}
    assert set(rows) == {TEXT_MODEL, MEDIA_MODEL}, rows
    for m in rows.values():
        bt = m["bt"]
        assert bt["lo"] <= bt["rating"] <= bt["hi"] and bt["hi"] > bt["lo"], bt
    d.get(server.base + "/arena/leaderboard")
    for name in rows:
        wait(d, lambda n=name: d.find_elements(By.CSS_SELECTOR, f'#leaderboard tr[data-model="{n}"]'), 30, f"the row of {name}")
        text = d.find_element(By.CSS_SELECTOR, f'#leaderboard tr[data-model="{name}"]').text
        assert "+" in text and str(round(rows[name]["bt"]["rating"])) in text, text
    assert by_id(d, "win-rate").text.strip(), "no win-rate matrix"
    errors = console_errors(d)
    assert not errors, f"console errors on the leaderboard: {errors}"
    d.save_screenshot(os.path.join(out, "leaderboard.png"))
    for m in board["models"]:
        bt = m["bt"]
        print(f"leaderboard: {m['model']}: BT {bt['rating']:.1f} [{bt['lo']:.1f}, {bt['hi']:.1f}], "
              f"Elo {m['elo']:.1f}, {m['votes']} votes ({m['wins']}W/{m['losses']}L/{m['ties']}T)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        image = os.path.join(tmp, "picture.png")
        png(image)
        state = os.path.join(tmp, "state")
        log = os.path.join(args.out, "server.log")
        open(log, "w").close()
        server = Server(args.host, state, log)
        d = browser(os.path.join(tmp, "profile"))
        try:
            playground(d, server, args.out, image)
            board = arena(d, server, args.out)
            server.stop()
            # The same address, so the page's origin (and its saved key) is the same.
            server = Server(args.host, state, log, port=server.port)
            leaderboard(d, server, args.out, board)
        except Exception:
            d.save_screenshot(os.path.join(args.out, "failure.png"))
            print(f"failed; screenshots and server.log in {args.out}", file=sys.stderr)
            raise
        finally:
            d.quit()
            server.stop()
    print(f"browser check passed; screenshots in {args.out}")


if __name__ == "__main__":
    main()
