#!/usr/bin/env python3
"""Reference fixtures for the quantized kernels, made by llama.cpp's own C code (ggml).

Run with a Python that has llama-cpp-python 0.3.36 (its shared libraries libggml-base,
libggml-cpu, libllama), numpy and the `gguf` package installed, e.g.
/root/.cache/reka/tokvenv/bin/python.

Modes:
  (default) / --kernels   write tests/fixtures/kquants/<type>.bin (format in ORIGIN.md)
                          and check them (dequant against gguf.quants, dot against
                          dequant . x).
  --check                 only check the committed .bin files.
  --models                requantize SmolLM2-135M-Instruct.Q4_1.gguf into Q4_K_M, Q3_K_S
                          and Q6_K files next to it (not committed), print their tensor
                          types and sha256s.
  --greedy                greedy-decode 64 tokens of "Once upon a time" with each of the
                          three files and write tests/fixtures/kquants/smollm2-*-greedy.json.

Options: --models-dir DIR (default /root/.cache/reka/models), --out DIR (default
tests/fixtures/kquants relative to the repository root).
"""

import argparse
import ctypes
import hashlib
import json
import os
import struct
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "kquants")
DEFAULT_MODELS = "/root/.cache/reka/models"
SOURCE_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"

# enum ggml_type (ggml/include/ggml.h of llama.cpp as vendored in llama-cpp-python 0.3.36)
GGML_TYPE = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q8_1": 9,
    "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "Q8_K": 15,
    "IQ4_NL": 20, "IQ4_XS": 23, "BF16": 30,
}
GGML_NAME = {v: k for k, v in GGML_TYPE.items()}

# IQ4_NL works too (--types IQ4_NL) but no SmolLM2 requantization uses it
KERNEL_TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]

ROWS, COLS, N_ACT = 16, 512, 3
MAGIC = b"RKQF"
VERSION = 1

# llama_ftype values (include/llama.h)
FTYPES = {"Q4_K_M": 15, "Q3_K_S": 11, "Q6_K": 18}

PROMPT = "Once upon a time"
PROMPT_IDS = [6403, 1980, 253, 655]
N_GREEDY = 64


# --------------------------------------------------------------------------- ggml via ctypes

def lib_dir():
    import llama_cpp
    return os.path.join(os.path.dirname(llama_cpp.__file__), "lib")


TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_int)


class TypeTraits(ctypes.Structure):  # struct ggml_type_traits (ggml.h)
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", TO_FLOAT),
        ("from_float_ref", FROM_FLOAT),
    ]


class TypeTraitsCpu(ctypes.Structure):  # struct ggml_type_traits_cpu (ggml-cpu.h)
    _fields_ = [
        ("from_float", FROM_FLOAT),
        ("vec_dot", VEC_DOT),
        ("vec_dot_type", ctypes.c_int),
        ("nrows", ctypes.c_int64),
    ]


class Ggml:
    def __init__(self):
        d = lib_dir()
        mode = getattr(os, "RTLD_GLOBAL", 0)
        self.base = ctypes.CDLL(os.path.join(d, "libggml-base.so"), mode=mode)
        self.cpu = ctypes.CDLL(os.path.join(d, "libggml-cpu.so"), mode=mode)
        b, c = self.base, self.cpu
        b.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
        b.ggml_get_type_traits.argtypes = [ctypes.c_int]
        b.ggml_quantize_init.argtypes = [ctypes.c_int]
        b.ggml_quantize_init.restype = None
        b.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
        b.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
        b.ggml_quantize_chunk.restype = ctypes.c_size_t
        b.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                          ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_void_p]
        b.ggml_row_size.restype = ctypes.c_size_t
        b.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
        c.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TypeTraitsCpu)
        c.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
        c.ggml_cpu_init.restype = None
        c.ggml_cpu_init()

    def traits(self, t):
        return self.base.ggml_get_type_traits(t).contents

    def cpu_traits(self, t):
        return self.cpu.ggml_get_type_traits_cpu(t).contents

    def cpu_features(self):
        out = []
        for f in ["sse3", "ssse3", "avx", "avx2", "f16c", "fma", "avx_vnni", "avx512",
                  "avx512_vnni", "avx512_bf16"]:
            fn = getattr(self.cpu, "ggml_cpu_has_" + f, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                if fn():
                    out.append(f)
        return out

    def row_size(self, t, n):
        return self.base.ggml_row_size(t, n)

    def quantize(self, t, src):
        src = np.ascontiguousarray(src, dtype=np.float32)
        nrows, n = src.shape
        self.base.ggml_quantize_init(t)
        dst = np.zeros(nrows * self.row_size(t, n), dtype=np.uint8)
        wrote = self.base.ggml_quantize_chunk(t, src.ctypes.data, dst.ctypes.data, 0,
                                              nrows, n, None)
        assert wrote == dst.size, (wrote, dst.size)
        return dst

    def to_float(self, t, q, k):
        y = np.zeros(k, dtype=np.float32)
        self.traits(t).to_float(q.ctypes.data, y.ctypes.data, k)
        return y

    def from_float_cpu(self, t, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        dst = np.zeros(self.row_size(t, x.size), dtype=np.uint8)
        self.cpu_traits(t).from_float(x.ctypes.data, dst.ctypes.data, x.size)
        return dst


# --------------------------------------------------------------------------- kernel fixtures

def make_weights(t):
    rng = np.random.default_rng(20240 + t)
    w = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    # per-row scales spanning ~3 decades (real weights are ~0.02; some rows are larger)
    scales = np.array([0.02, 0.05, 0.1, 0.3, 1.0, 2.5, 0.01, 0.04] * (ROWS // 8),
                      dtype=np.float32)
    w *= scales[:, None]
    w[0, :] = 0.0  # all-zero row: zero scales
    # row 1: a few large outliers (about 40-150 times the row's std)
    w[1, 3] = 7.5
    w[1, 77] = -5.0
    w[1, 300] = 2.0
    w[1, 511] = -3.25
    # row 2: all values of one sign within some blocks (min/offset paths)
    w[2, :64] = np.abs(w[2, :64])
    w[2, 256:320] = -np.abs(w[2, 256:320])
    return w


def make_acts(t):
    rng = np.random.default_rng(90210 + t)
    x = rng.standard_normal((N_ACT, COLS)).astype(np.float32)
    x[1] *= 0.05
    x[2] *= 3.0
    x[2, 100] = 40.0  # one large activation
    return x


def build_fixture(g, name):
    t = GGML_TYPE[name]
    tr = g.traits(t)
    ct = g.cpu_traits(t)
    bs, bb = tr.blck_size, tr.type_size
    vdt = ct.vec_dot_type
    vtr = g.traits(vdt)
    assert COLS % bs == 0
    assert not g.base.ggml_quantize_requires_imatrix(t)
    w = make_weights(t)
    q = g.quantize(t, w)
    assert q.size == ROWS * COLS // bs * bb
    row_bytes = COLS // bs * bb
    deq = g.to_float(t, q, ROWS * COLS)
    x = make_acts(t)
    xq_rows = [g.from_float_cpu(vdt, x[a]) for a in range(N_ACT)]
    xrow_bytes = COLS // vtr.blck_size * vtr.type_size
    assert all(r.size == xrow_bytes for r in xq_rows)
    xq = np.concatenate(xq_rows)
    dot = np.zeros(N_ACT * ROWS, dtype=np.float32)
    s = np.zeros(1, dtype=np.float32)
    for a in range(N_ACT):
        for r in range(ROWS):
            wr = q[r * row_bytes:(r + 1) * row_bytes]
            ct.vec_dot(COLS, s.ctypes.data, 0, wr.ctypes.data, 0, xq_rows[a].ctypes.data, 0, 1)
            dot[a * ROWS + r] = s[0]
    info = dict(name=name, ggml_type=t, type_name=tr.type_name.decode(), block_size=bs,
                block_bytes=bb, vec_dot_type=GGML_NAME.get(vdt, str(vdt)),
                vec_dot_type_id=vdt, vec_dot_block_size=vtr.blck_size,
                vec_dot_block_bytes=vtr.type_size, nrows=ct.nrows)
    return info, q, deq, x, xq, dot


def write_fixture(path, t, q, deq, x, xq, dot):
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<5I", VERSION, t, ROWS, COLS, N_ACT))
        for sec in (q.astype(np.uint8), deq.astype("<f4"), x.astype("<f4"),
                    xq.astype(np.uint8), dot.astype("<f4")):
            b = sec.tobytes()
            f.write(struct.pack("<Q", len(b)))
            f.write(b)


def read_fixture(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == MAGIC
    version, t, rows, cols, n_act = struct.unpack_from("<5I", data, 4)
    assert version == VERSION
    off = 24
    secs = []
    for _ in range(5):
        (n,) = struct.unpack_from("<Q", data, off)
        off += 8
        secs.append(data[off:off + n])
        off += n
    assert off == len(data), "trailing bytes"
    q = np.frombuffer(secs[0], dtype=np.uint8)
    deq = np.frombuffer(secs[1], dtype="<f4").reshape(rows, cols)
    x = np.frombuffer(secs[2], dtype="<f4").reshape(n_act, cols)
    xq = np.frombuffer(secs[3], dtype=np.uint8)
    dot = np.frombuffer(secs[4], dtype="<f4").reshape(n_act, rows)
    return dict(ggml_type=t, rows=rows, cols=cols, n_act=n_act, q=q, deq=deq, x=x, xq=xq,
                dot=dot)


def f16(b):
    return np.frombuffer(b, dtype="<f2").astype(np.float32)


def dequant_act(vdt, xq, cols):
    """numpy dequantization of the activation blocks (independent of ggml)."""
    if vdt == GGML_TYPE["Q8_0"]:
        blk = xq.reshape(-1, 34)
        d = f16(blk[:, :2].tobytes())
        qs = blk[:, 2:].view(np.int8).astype(np.float32)
        return (d[:, None] * qs).reshape(-1)
    if vdt == GGML_TYPE["Q8_1"]:
        blk = xq.reshape(-1, 36)
        d = f16(blk[:, :2].tobytes())
        s = f16(blk[:, 2:4].tobytes())
        qs = blk[:, 4:].view(np.int8).astype(np.float32)
        # s = d * sum(qs), as ggml stores it (f16)
        want = d * qs.sum(axis=1)
        assert np.allclose(s, want, rtol=2e-3, atol=1e-6), "Q8_1 s field"
        return (d[:, None] * qs).reshape(-1)
    if vdt == GGML_TYPE["Q8_K"]:
        blk = xq.reshape(-1, 292)
        d = np.frombuffer(blk[:, :4].tobytes(), dtype="<f4")
        qs = blk[:, 4:260].view(np.int8).astype(np.int32)
        bsums = np.frombuffer(blk[:, 260:292].tobytes(), dtype="<i2").reshape(-1, 16)
        assert (qs.reshape(-1, 16, 16).sum(axis=2) == bsums).all(), "Q8_K bsums"
        return (d[:, None] * qs.astype(np.float32)).reshape(-1)
    raise ValueError(vdt)


def check_fixture(path, g=None):
    import gguf
    fx = read_fixture(path)
    t = fx["ggml_type"]
    name = GGML_NAME[t]
    qt = gguf.GGMLQuantizationType[name]
    bs, bb = gguf.GGML_QUANT_SIZES[qt]
    rows, cols, n_act = fx["rows"], fx["cols"], fx["n_act"]
    assert fx["q"].size == rows * cols // bs * bb
    # 1. ggml's to_float vs the gguf package's independent numpy dequantizer
    ref = gguf.quants.dequantize(fx["q"].reshape(rows, cols // bs * bb), qt)
    deq_err = float(np.abs(ref - fx["deq"]).max())
    assert np.array_equal(ref.astype(np.float32), fx["deq"]) or deq_err <= 1e-6 * max(
        1.0, float(np.abs(ref).max())), (name, deq_err)
    assert (fx["deq"][0] == 0).all(), "zero row"
    # 2. vec_dot vs dequant . x (loose: x was quantized to 8 bits)
    exact = fx["x"].astype(np.float64) @ fx["deq"].astype(np.float64).T  # [n_act, rows]
    scale = np.abs(fx["x"]).astype(np.float64) @ np.abs(fx["deq"]).astype(np.float64).T
    rel = np.abs(fx["dot"] - exact) / np.maximum(scale, 1e-30)
    # 3. vec_dot vs dequant . dequant(xq) (tight: only float rounding / f16 sums differ)
    vdt_id = {"Q2_K": 15, "Q3_K": 15, "Q4_K": 15, "Q5_K": 15, "Q6_K": 15,
              "Q4_1": 9, "Q5_1": 9}.get(name, 8)
    xd = np.stack([dequant_act(vdt_id, fx["xq"].reshape(n_act, -1)[a], cols)
                   for a in range(n_act)])
    xd_rel = np.abs(xd - fx["x"]).max() / np.abs(fx["x"]).max()
    exact_q = xd.astype(np.float64) @ fx["deq"].astype(np.float64).T
    rel_q = np.abs(fx["dot"] - exact_q) / np.maximum(scale, 1e-30)
    assert (fx["dot"][:, 0] == 0).all()
    assert rel.max() < 2e-2, (name, rel.max())
    assert rel_q.max() < 2e-3, (name, rel_q.max())
    return dict(name=name, deq_maxdiff_vs_gguf=deq_err, dot_rel_vs_f32=float(rel.max()),
                dot_rel_vs_deq_xq=float(rel_q.max()), xq_rel=float(xd_rel),
                size=os.path.getsize(path))


def kernels(out, types):
    g = Ggml()
    os.makedirs(out, exist_ok=True)
    print("ggml-cpu features:", " ".join(g.cpu_features()))
    infos = []
    for name in types:
        info, q, deq, x, xq, dot = build_fixture(g, name)
        path = os.path.join(out, name.lower() + ".bin")
        write_fixture(path, info["ggml_type"], q, deq, x, xq, dot)
        infos.append(info)
        print(json.dumps(info))
    check(out, types)
    return infos


def check(out, types):
    total = 0
    for name in types:
        path = os.path.join(out, name.lower() + ".bin")
        r = check_fixture(path)
        total += r["size"]
        print("check %-7s size %6d  deq vs gguf max|diff| %.3g  dot rel err vs f32 %.2e, "
              "vs deq.deq(xq) %.2e  (x quant rel %.2e)" % (
                  name, r["size"], r["deq_maxdiff_vs_gguf"], r["dot_rel_vs_f32"],
                  r["dot_rel_vs_deq_xq"], r["xq_rel"]))
    print("total fixture bytes:", total)


# --------------------------------------------------------------------------- models

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_kind(name):
    parts = name.split(".")
    if parts[0] == "blk":
        return ".".join(parts[2:])
    return name


def tensor_types(path):
    import gguf
    r = gguf.GGUFReader(path)
    kinds = {}
    counts = {}
    for t in r.tensors:
        ty = t.tensor_type.name
        k = tensor_kind(t.name)
        kinds.setdefault(k, {}).setdefault(ty, 0)
        kinds[k][ty] += 1
        counts[ty] = counts.get(ty, 0) + 1
    return counts, kinds


def models(mdir, which):
    import llama_cpp
    src = os.path.join(mdir, SOURCE_MODEL)
    for name in which:
        dst = os.path.join(mdir, "SmolLM2-135M-Instruct.%s.gguf" % name)
        p = llama_cpp.llama_model_quantize_default_params()
        p.nthread = 2
        p.ftype = FTYPES[name]
        p.allow_requantize = True
        rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
        assert rc == 0, rc
    for name in ["Q4_1"] + list(which):
        report_model(os.path.join(mdir, "SmolLM2-135M-Instruct.%s.gguf" % name))


def report_model(path):
    counts, kinds = tensor_types(path)
    print("==", os.path.basename(path), "sha256", sha256(path), "bytes", os.path.getsize(path))
    print("   types:", json.dumps(counts, sort_keys=True))
    for k in sorted(kinds):
        print("   %-24s %s" % (k, json.dumps(kinds[k], sort_keys=True)))


# --------------------------------------------------------------------------- greedy

FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}


def greedy(mdir, out, which, flash_attn="off"):
    import llama_cpp
    llama_cpp.llama_backend_init()
    for name in which:
        fname = "SmolLM2-135M-Instruct.%s.gguf" % name
        path = os.path.join(mdir, fname)
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = 0
        model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
        assert model
        vocab = llama_cpp.llama_model_get_vocab(model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = 512
        cp.n_batch = 512
        cp.n_threads = 2
        cp.n_threads_batch = 2
        # as llama_cpp.Llama(...) does by default (flash_attn=False); the C default is auto,
        # which turns flash attention on for the CPU and changes the logits by ~0.1
        cp.flash_attn_type = FLASH_ATTN[flash_attn]
        ctx = llama_cpp.llama_init_from_model(model, cp)
        assert ctx
        # tokenization check: raw prompt, no BOS
        buf = (llama_cpp.llama_token * 64)()
        n = llama_cpp.llama_tokenize(vocab, PROMPT.encode(), len(PROMPT.encode()), buf, 64,
                                     False, False)
        assert list(buf[:n]) == PROMPT_IDS, list(buf[:n])

        def piece(tok):
            b = ctypes.create_string_buffer(256)
            m = llama_cpp.llama_token_to_piece(vocab, tok, b, 256, 0, False)
            assert m >= 0
            return b.raw[:m]

        toks = list(PROMPT_IDS)
        arr = (llama_cpp.llama_token * len(toks))(*toks)
        steps = []
        text = b""
        batch = llama_cpp.llama_batch_get_one(arr, len(toks))
        for step in range(N_GREEDY):
            assert llama_cpp.llama_decode(ctx, batch) == 0
            lp = llama_cpp.llama_get_logits_ith(ctx, -1)
            logits = np.ctypeslib.as_array(lp, shape=(n_vocab,)).copy()
            order = np.argsort(-logits, kind="stable")
            best, second = int(order[0]), int(order[1])
            steps.append(dict(step=step, token=best, logit=float(logits[best]),
                              second_token=second,
                              margin=float(logits[best] - logits[second])))
            text += piece(best)
            one = (llama_cpp.llama_token * 1)(best)
            arr = one
            batch = llama_cpp.llama_batch_get_one(arr, 1)
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
        counts, kinds = tensor_types(path)
        doc = dict(
            origin=("llama.cpp via llama-cpp-python %s low-level API (llama_decode on the CPU, "
                    "ggml-cpu AVX2 build), greedy argmax of the last position's logits, "
                    "no sampling chain, n_ctx 512 (n_batch 512), 2 threads, flash attention %s, "
                    "f16 KV cache, raw prompt without BOS, prompt decoded as one batch then one "
                    "token per step; made by scripts/kquant-fixtures.py --greedy"
                    % (llama_cpp.__version__, flash_attn)),
            llama_cpp_python=llama_cpp.__version__,
            flash_attn=flash_attn,
            model_file=fname,
            model_sha256=sha256(path),
            made_from=("%s requantized with llama_model_quantize (allow_requantize, "
                       "ftype %s, nthread 2); see scripts/kquant-fixtures.py --models"
                       % (SOURCE_MODEL, name)) if name in FTYPES else None,
            tensor_types=counts,
            prompt=PROMPT,
            prompt_ids=PROMPT_IDS,
            n_tokens=N_GREEDY,
            tokens=[s["token"] for s in steps],
            text=text.decode("utf-8", errors="replace"),
            min_margin=min(s["margin"] for s in steps),
            min_margin_step=min(range(N_GREEDY), key=lambda i: steps[i]["margin"]),
            steps=steps,
        )
        jpath = os.path.join(out, "smollm2-%s-greedy.json" % name.lower())
        with open(jpath, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print("==", fname, "->", os.path.basename(jpath))
        print("   text:", repr(doc["text"]))
        print("   first 20 tokens:", doc["tokens"][:20])
        print("   step0 top %d logit %.4f; min margin %.4f at step %d" % (
            steps[0]["token"], steps[0]["logit"], doc["min_margin"], doc["min_margin_step"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--models", action="store_true")
    ap.add_argument("--greedy", action="store_true")
    ap.add_argument("--models-dir", default=DEFAULT_MODELS)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--flash-attn", default="off", choices=sorted(FLASH_ATTN),
                    help="llama_context_params.flash_attn_type for --greedy (default off, "
                         "as llama_cpp.Llama)")
    ap.add_argument("--types", default=",".join(KERNEL_TYPES))
    ap.add_argument("--quant", default="Q4_K_M,Q3_K_S,Q6_K",
                    help="llama ftypes for --models / --greedy (Q4_1 allowed for --greedy)")
    a = ap.parse_args()
    types = [t.strip().upper() for t in a.types.split(",") if t.strip()]
    quants = [t.strip().upper() for t in a.quant.split(",") if t.strip()]
    if not (a.kernels or a.check or a.models or a.greedy):
        a.kernels = True
    if a.kernels:
        kernels(a.out, types)
    elif a.check:
        check(a.out, types)
    if a.models:
        models(a.models_dir, quants)
    if a.greedy:
        os.makedirs(a.out, exist_ok=True)
        greedy(a.models_dir, a.out, quants, a.flash_attn)


if __name__ == "__main__":
    sys.exit(main())
