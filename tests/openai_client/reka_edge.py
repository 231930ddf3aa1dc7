#!/usr/bin/env python3
"""Reka Edge through the official `openai` Python client (pinned in
scripts/openai-client-check.sh), against a running `reka-host serve --model
tests/fixtures/reka_edge --dtype f32`: an image by data URL, a 2×2-grid image
(five tiles), video frames, a multi-turn chat with an earlier image, streaming.

Expected prompt sizes and greedy answers are the fixture's references (Reka's
plugin renders and tokenises, transformers decodes; tests/fixtures/reka_edge).
Usage: reka_edge.py BASE_URL
"""

import base64
import json
import os
import sys

import openai

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "reka_edge")
REF = json.load(open(os.path.join(FIX, "reference.json")))
TILE_TOKENS = 64


def data_url(rel):
    with open(os.path.join(FIX, rel), "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def case(name):
    return next(c for c in REF["cases"] if c["name"] == name)


def image(rel):
    return {"type": "image_url", "image_url": {"url": data_url(rel)}}


def tiles(rel):
    return next(i for i in REF["images"] if i["file"] == rel)["tiles"]


def text_tokens(c):
    """Prompt tokens that are not media placeholders (plugin's count)."""
    return c["n_ids"] - c["n_placeholders"]


def main():
    base = sys.argv[1].rstrip("/") + "/v1"
    # The server requires this key when the check script starts it with REKA_API_KEY.
    key = os.environ.get("OPENAI_API_KEY", "unused")
    client = openai.OpenAI(base_url=base, api_key=key)
    checks = 0
    if key != "unused":
        for wrong in ["not-the-key", key[:-1]]:
            try:
                openai.OpenAI(base_url=base, api_key=wrong).models.list()
                raise AssertionError(f"api key {wrong!r} was accepted")
            except openai.AuthenticationError as e:
                assert e.status_code == 401, e
                assert e.body["code"] == "invalid_api_key", e.body
        checks += 1
    model = client.models.list().data[0].id

    def ask(messages, **kw):
        return client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=8, **kw)

    # An image by data URL, and a 2x2 grid (4 cells + the whole image = 5 tiles).
    for name, rel in [("a_image_one_tile", "images/one_tile_300x200.png"), ("b_image_grid2x2", "images/grid2x2_1000x700.png")]:
        c = case(name)
        text = c["messages"][0]["content"][1]["text"]
        r = ask([{"role": "user", "content": [image(rel), {"type": "text", "text": text}]}])
        n = tiles(rel)
        assert c["n_placeholders"] == TILE_TOKENS * n, (name, n)
        assert r.usage.prompt_tokens == c["n_ids"] == text_tokens(c) + TILE_TOKENS * n, (name, r.usage, n)
        assert r.choices[0].message.content == c["greedy_text"], (name, r.choices[0].message.content)
        print(f"ok {name}: {n} tiles, {r.usage.prompt_tokens} prompt tokens ({TILE_TOKENS} a tile), answer as the reference")
        checks += 1

    # Video frames (a `video` part: a list of still frames).
    c = case("c_video_3_frames")
    frames = [data_url(f) for f in REF["video"]["frames"]]
    r = ask([{"role": "user", "content": [{"type": "video", "video": frames}, {"type": "text", "text": "Describe the video!"}]}])
    assert r.usage.prompt_tokens == c["n_ids"], r.usage
    assert r.choices[0].message.content == c["greedy_text"], r.choices[0].message.content
    print(f"ok video: {len(frames)} frames, {r.usage.prompt_tokens} prompt tokens")
    checks += 1

    # A multi-turn chat with an image in an earlier turn, streamed.
    c = case("d_system_image_multiturn")
    msgs = json.loads(json.dumps(c["messages"]))
    msgs[1]["content"][0] = image("images/wide_2000x150.png")
    stream = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=8, stream=True,
                                            stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert usage.prompt_tokens == c["n_ids"], usage
    assert text == c["greedy_text"], text
    print(f"ok multi-turn with an earlier image, streamed: {usage.prompt_tokens} prompt tokens")
    checks += 1

    # Log-probs through the client's own types, both endpoints (issue 16).
    r = ask([{"role": "user", "content": "Name a colour."}], logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens, (len(content), r.usage)
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3 and bytes(t.bytes).decode("utf-8", "replace") == t.token, t
        assert t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob, t
        assert max(x.logprob for x in t.top_logprobs) >= t.logprob - 1e-6, t  # greedy picks the best
    r = client.completions.create(model=model, prompt="Hello there", max_tokens=3, temperature=0, logprobs=2, echo=True)
    lp = r.choices[0].logprobs
    n_prompt = r.usage.prompt_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n_prompt + r.usage.completion_tokens, lp
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None and all(x <= 0 for x in lp.token_logprobs[1:]), lp
    assert r.choices[0].text.startswith("Hello there") and "".join(lp.tokens) == r.choices[0].text, (r.choices[0].text, lp.tokens)
    print(f"ok log-probs: chat {len(content)} tokens with top 3, completions echo {len(lp.tokens)} tokens")
    checks += 1

    # Bad input is a 400 the client raises with the server's message.
    try:
        ask([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
        raise AssertionError("a broken image was accepted")
    except openai.BadRequestError as e:
        print(f"ok broken image: 400 ({e.message[:80]})")
        checks += 1
    print(f"{checks} passed, 0 failed")


if __name__ == "__main__":
    main()
