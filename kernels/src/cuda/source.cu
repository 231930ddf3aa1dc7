// CUDA kernels for the decoder's hot path, compiled at run time with NVRTC
// (no headers: bf16 is handled as its 16 raw bits). bf16 weights, f32
// activations, f32 accumulation. See kernels/src/cuda/mod.rs for the launch
// side and the CPU references each kernel is tested against.

typedef unsigned short bf16_t;
typedef unsigned long long u64;
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float bf_lo(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf_hi(unsigned w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ float bf(bf16_t h) { return __uint_as_float(((unsigned)h) << 16); }

// f32 -> bf16, round to nearest even (NaN stays NaN).
__device__ __forceinline__ bf16_t to_bf(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

// f32 <-> f16 bits (round to nearest even), through PTX: no cuda_fp16.h.
// (REKA_CUDA_EMU: the CPU emulator, kernels/emu, has no PTX.)
__device__ __forceinline__ unsigned short to_h(float f) {
#ifdef REKA_CUDA_EMU
    return emu::f32_to_f16(f);
#else
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
}
__device__ __forceinline__ float hf(unsigned short h) {
#ifdef REKA_CUDA_EMU
    return emu::f16_to_f32(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}
__device__ __forceinline__ float round_h(float f) { return hf(to_h(f)); }

// e^x from IEEE operations only, step for step as kernels/src/expf.rs, so the
// CPU build and these kernels give the same bits (CUDA's expf differs by ulps).
__device__ __forceinline__ float pow2i(int k) { return __int_as_float((k + 127) << 23); }
__device__ __forceinline__ float exp_rt(float x) {
    if (x != x) return x;
    if (x > 88.72284f) return __int_as_float(0x7f800000);
    if (x < -103.97208f) return 0.0f;
    float n = roundf(x * 1.44269504088896340736f);
    float r = fmaf(n, 2.1219444e-4f, fmaf(n, -0.6933594f, x));
    float p = 1.9875691e-4f;
    p = fmaf(p, r, 1.3981999e-3f);
    p = fmaf(p, r, 8.333452e-3f);
    p = fmaf(p, r, 4.1665796e-2f);
    p = fmaf(p, r, 1.6666665e-1f);
    p = fmaf(p, r, 0.5f);
    float y = fmaf(p, r * r, r) + 1.0f;
    int k = (int)n, a = k / 2;
    return y * pow2i(a) * pow2i(k - a);
}

// A KV cache element type: 16 bits stored, f32 computed.
struct Bf16Kv {
    static __device__ __forceinline__ float load(unsigned short h) { return bf(h); }
    static __device__ __forceinline__ unsigned short store(float f) { return to_bf(f); }
};
struct F16Kv {
    static __device__ __forceinline__ float load(unsigned short h) { return hf(h); }
    static __device__ __forceinline__ unsigned short store(float f) { return to_h(f); }
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ int warp_isum(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// 16 bytes of weights that are read exactly once: skip L1.
__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
#ifdef REKA_CUDA_EMU
    return *p;
#else
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
#endif
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024).
__device__ float block_sum(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    int nw = blockDim.x >> 5;
    v = (threadIdx.x < nw) ? part[threadIdx.x] : 0.0f;
    if (warp == 0) v = warp_sum(v);
    if (threadIdx.x == 0) part[0] = v;
    __syncthreads();
    float r = part[0];
    __syncthreads();
    return r;
}

// ---------------------------------------------------------------- RMSNorm
// y[r] = x[src(r)] / sqrt(mean(x²) + eps) * w; one block per output row.
// src(r) = rows ? rows[r] : r (rows picks e.g. each session's last position).
// seq: the sum of squares in order, by one thread, as candle's CPU kernel
// takes it (the same bits; slower, so only where the CPU build must be matched).
extern "C" __global__ void rms_norm(const float* __restrict__ x, const float* __restrict__ w,
                                    float* __restrict__ y, const int* __restrict__ rows,
                                    int n, float eps, int seq) {
    __shared__ float total;
    int r = blockIdx.x;
    int src = rows ? rows[r] : r;
    const float* xr = x + (size_t)src * n;
    float sum;
    if (seq) {
        if (threadIdx.x == 0) {
            float s = -0.0f;
            for (int i = 0; i < n; ++i) s = s + xr[i] * xr[i];
            total = s;
        }
        __syncthreads();
        sum = total;
    } else {
        float s = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) s += xr[i] * xr[i];
        sum = block_sum(s);
    }
    // x / sqrt(mean + eps) * w, as the CPU build (candle) computes it: an
    // IEEE square root and division, not rsqrtf's approximation.
    float m = sqrtf(sum / (float)n + eps);
    float* yr = y + (size_t)r * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] / m * w[i];
}

// ---------------------------------------------------------------- GEMV
// y[b, r] (+)= sum_c W[r, c] · x[b, c] for NB activation rows at once: one warp
// per weight row, 16-byte loads of 8 bf16 weights, four in flight per lane,
// every weight read once for all NB rows. cols % 8 == 0.
// 16-bit weight types: the two values in a 32-bit word, widened.
struct Bf16W {
    static __device__ __forceinline__ float lo(unsigned w) { return bf_lo(w); }
    static __device__ __forceinline__ float hi(unsigned w) { return bf_hi(w); }
};
struct F16W {
    static __device__ __forceinline__ float lo(unsigned w) { return hf((unsigned short)(w & 0xffffu)); }
    static __device__ __forceinline__ float hi(unsigned w) { return hf((unsigned short)(w >> 16)); }
};

template <typename WT>
__device__ __forceinline__ void fma8(float& acc, uint4 w, const float* xb) {
    float4 a = *reinterpret_cast<const float4*>(xb);
    float4 c = *reinterpret_cast<const float4*>(xb + 4);
    acc = fmaf(WT::lo(w.x), a.x, acc);
    acc = fmaf(WT::hi(w.x), a.y, acc);
    acc = fmaf(WT::lo(w.y), a.z, acc);
    acc = fmaf(WT::hi(w.y), a.w, acc);
    acc = fmaf(WT::lo(w.z), c.x, acc);
    acc = fmaf(WT::hi(w.z), c.y, acc);
    acc = fmaf(WT::lo(w.w), c.z, acc);
    acc = fmaf(WT::hi(w.w), c.w, acc);
}

template <typename WT, int NB>
__device__ __forceinline__ void gemv_impl(const bf16_t* __restrict__ W, const float* __restrict__ x,
                                          float* __restrict__ y, int rows, int cols, int accumulate) {
    int row = (int)((blockIdx.x * (unsigned)blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const uint4* wr = reinterpret_cast<const uint4*>(W + (size_t)row * cols);
    int n8 = cols >> 3;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; ++b) acc[b] = 0.0f;
    int i = lane;
    for (; i + 96 < n8; i += 128) {
        uint4 w0 = ld_stream(wr + i), w1 = ld_stream(wr + i + 32);
        uint4 w2 = ld_stream(wr + i + 64), w3 = ld_stream(wr + i + 96);
#pragma unroll
        for (int b = 0; b < NB; ++b) {
            const float* xb = x + (size_t)b * cols + 8 * i;
            fma8<WT>(acc[b], w0, xb);
            fma8<WT>(acc[b], w1, xb + 256);
            fma8<WT>(acc[b], w2, xb + 512);
            fma8<WT>(acc[b], w3, xb + 768);
        }
    }
    for (; i < n8; i += 32) {
        uint4 w0 = ld_stream(wr + i);
#pragma unroll
        for (int b = 0; b < NB; ++b) fma8<WT>(acc[b], w0, x + (size_t)b * cols + 8 * i);
    }
#pragma unroll
    for (int b = 0; b < NB; ++b) {
        float s = warp_sum(acc[b]);
        if (lane == 0) {
            float* o = y + (size_t)b * rows + row;
            *o = accumulate ? *o + s : s;
        }
    }
}

#define GEMV(NAME, WT, NB)                                                                    \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                   \
        const bf16_t* __restrict__ W, const float* __restrict__ x, float* __restrict__ y,     \
        int rows, int cols, int accumulate) {                                                 \
        gemv_impl<WT, NB>(W, x, y, rows, cols, accumulate);                                   \
    }
GEMV(gemv_bf16_1, Bf16W, 1)
GEMV(gemv_bf16_2, Bf16W, 2)
GEMV(gemv_bf16_4, Bf16W, 4)
GEMV(gemv_bf16_8, Bf16W, 8)
GEMV(gemv_bf16_16, Bf16W, 16)
GEMV(gemv_bf16_32, Bf16W, 32)
GEMV(gemv_f16_1, F16W, 1)
GEMV(gemv_f16_2, F16W, 2)
GEMV(gemv_f16_4, F16W, 4)
GEMV(gemv_f16_8, F16W, 8)
GEMV(gemv_f16_16, F16W, 16)
GEMV(gemv_f16_32, F16W, 32)

// ---------------------------------------------------------------- RoPE + KV append
// For each row r (at position pos[r] of the session whose cache starts at
// cache[r]): rotates the q heads of qkv[r] in place, rotates the k heads and
// stores them into the layer's K plane, and stores v into the V plane, as the
// cache's element type KV (bf16, or f16 as llama.cpp keeps it).
// qkv rows are [q (qh·hd) | k (kvh·hd) | v (kvh·hd)]. A session's cache is
// [layer][K, V][cap][kvh·hd] 16-bit; meta[2r] = pos, meta[2r+1] = cap.
// interleaved: pairs (2i, 2i+1) (GGUF); else halves (i, i + hd/2) (HF).
// The K plane of `layer` in row r's session cache ([layer][K, V][cap][kvw]);
// its V plane follows at + cap·kvw.
__device__ __forceinline__ unsigned short* layer_k(const u64* cache, int r, int layer, int cap, int kvw) {
    return reinterpret_cast<unsigned short*>(cache[r]) + (size_t)layer * 2 * cap * kvw;
}

template <typename KV>
__device__ __forceinline__ void rope_impl(float* __restrict__ qkv, const float* __restrict__ cos_t,
                                          const float* __restrict__ sin_t, const int* __restrict__ meta,
                                          const u64* __restrict__ cache, int layer, int qh, int kvh,
                                          int hd, int interleaved) {
    int r = blockIdx.x;
    int pos = meta[2 * r], cap = meta[2 * r + 1];
    int half = hd / 2, kvw = kvh * hd;
    float* row = qkv + (size_t)r * (qh + 2 * kvh) * hd;
    unsigned short* kc = layer_k(cache, r, layer, cap, kvw) + (size_t)pos * kvw;
    unsigned short* vc = kc + (size_t)cap * kvw;
    const float* c = cos_t + (size_t)pos * half;
    const float* s = sin_t + (size_t)pos * half;
    int pairs = (qh + kvh) * half;
    for (int j = threadIdx.x; j < pairs; j += blockDim.x) {
        int head = j / half, i = j % half;
        int a = interleaved ? 2 * i : i;
        int b = interleaved ? 2 * i + 1 : i + half;
        float* h = row + (size_t)head * hd;
        float x0 = h[a], x1 = h[b];
        float y0 = x0 * c[i] - x1 * s[i];
        float y1 = x0 * s[i] + x1 * c[i];
        if (head < qh) {
            h[a] = y0;
            h[b] = y1;
        } else {
            unsigned short* k = kc + (size_t)(head - qh) * hd;
            k[a] = KV::store(y0);
            k[b] = KV::store(y1);
        }
    }
    const float* v = row + (size_t)(qh + kvh) * hd;
    for (int j = threadIdx.x; j < kvw; j += blockDim.x) vc[j] = KV::store(v[j]);
}

#define ROPE(NAME, KV)                                                                         \
    extern "C" __global__ void NAME(float* __restrict__ qkv, const float* __restrict__ cos_t,  \
                                    const float* __restrict__ sin_t, const int* __restrict__ meta, \
                                    const u64* __restrict__ cache, int layer, int qh, int kvh,  \
                                    int hd, int interleaved) {                                  \
        rope_impl<KV>(qkv, cos_t, sin_t, meta, cache, layer, qh, kvh, hd, interleaved);        \
    }
ROPE(rope_kv_append_bf16, Bf16Kv)
ROPE(rope_kv_append_f16, F16Kv)

// ---------------------------------------------------------------- decode attention
// Flash-decoding: one block per (row, kv head, split). The rep = qh / kvh
// query heads that share the kv head read each cached key and value once
// (GQA). Split z of gridDim.z takes one contiguous chunk of the row's
// positions 0..=pos[r] (causal), at least SPLIT_MIN of them, so a short cache
// leaves the later splits empty (their blocks return at once). Warps take the
// chunk's positions round-robin with an online softmax each; the block merges
// the warps' (max, sum, acc). With one non-empty split that is the output.
// With more, each block writes its (max, sum, acc[hd]) to `part` and counts
// itself done in `done[r][g]`; the last block of the (row, kv head) merges
// the splits in split order (so the bits do not depend on which block is
// last) and sets the count back to 0 for the next launch: no second kernel.
// Lane l holds dims l, l + 32, ... (MAXD of them).
#define MAXREP 8
#define SPLIT_MIN 64
// The key and value of position p that this lane holds (dims lane, lane + 32, ...).
template <int MAXD, typename KV>
__device__ __forceinline__ void load_kv(const unsigned short* K, const unsigned short* V, int p, int kvw,
                                        int hd, int lane, float* k, float* v) {
#pragma unroll
    for (int d = 0; d < MAXD; ++d) {
        int dim = lane + 32 * d;
        k[d] = dim < hd ? KV::load(K[(size_t)p * kvw + dim]) : 0.0f;
        v[d] = dim < hd ? KV::load(V[(size_t)p * kvw + dim]) : 0.0f;
    }
}

// q · k over the warp, scaled.
template <int MAXD>
__device__ __forceinline__ float score(const float* q, const float* k, float scale) {
    float s = 0.0f;
#pragma unroll
    for (int d = 0; d < MAXD; ++d) s = fmaf(q[d], k[d], s);
    return warp_sum(s) * scale;
}

template <int MAXD, int NW, typename KV>
__device__ __forceinline__ void attn_impl(const float* __restrict__ qkv, float* __restrict__ out,
                                          float* part, unsigned* __restrict__ done,
                                          const int* __restrict__ meta, const u64* __restrict__ cache, int layer,
                                          int qh, int kvh, int hd, float scale) {
    __shared__ float sm_m[NW][MAXREP], sm_l[NW][MAXREP];
    __shared__ float sm_acc[NW][MAXREP][MAXD * 32];
    int r = blockIdx.x, g = blockIdx.y;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int rep = qh / kvh, kvw = kvh * hd;
    int pos = meta[2 * r], cap = meta[2 * r + 1];
    const unsigned short* K = layer_k(cache, r, layer, cap, kvw) + (size_t)g * hd;
    const unsigned short* V = K + (size_t)cap * kvw;
    const float* qrow = qkv + (size_t)r * (qh + 2 * kvh) * hd;
    float q[MAXREP][MAXD], acc[MAXREP][MAXD], m[MAXREP], l[MAXREP];
#pragma unroll
    for (int j = 0; j < MAXREP; ++j) {
        m[j] = NEG_INF;
        l[j] = 0.0f;
#pragma unroll
        for (int d = 0; d < MAXD; ++d) {
            int dim = lane + 32 * d;
            q[j][d] = (j < rep && dim < hd) ? qrow[(size_t)(g * rep + j) * hd + dim] : 0.0f;
            acc[j][d] = 0.0f;
        }
    }
    int splits = gridDim.z, z = blockIdx.z;
    int chunk = (pos + splits) / splits;  // ceil((pos + 1) / splits)
    chunk = chunk < SPLIT_MIN ? SPLIT_MIN : chunk;
    int used = (pos + chunk) / chunk;  // non-empty splits
    if (z >= used) return;             // the whole block: nothing to attend to
    int first = z * chunk, end = first + chunk <= pos + 1 ? first + chunk : pos + 1;
    for (int p = first + warp; p < end; p += NW) {
        float k[MAXD], v[MAXD];
        load_kv<MAXD, KV>(K, V, p, kvw, hd, lane, k, v);
#pragma unroll
        for (int j = 0; j < MAXREP; ++j) {
            if (j < rep) {
                float s = score<MAXD>(q[j], k, scale);
                float mn = fmaxf(m[j], s);
                float corr = exp_rt(m[j] - mn), e = exp_rt(s - mn);
                l[j] = l[j] * corr + e;
#pragma unroll
                for (int d = 0; d < MAXD; ++d) acc[j][d] = fmaf(acc[j][d], corr, e * v[d]);
                m[j] = mn;
            }
        }
    }
    if (lane == 0) {
#pragma unroll
        for (int j = 0; j < MAXREP; ++j) {
            sm_m[warp][j] = m[j];
            sm_l[warp][j] = l[j];
        }
    }
#pragma unroll
    for (int j = 0; j < MAXREP; ++j) {
#pragma unroll
        for (int d = 0; d < MAXD; ++d) sm_acc[warp][j][lane + 32 * d] = acc[j][d];
    }
    __syncthreads();
    float* orow = out + (size_t)r * qh * hd;
    for (int idx = threadIdx.x; idx < rep * hd; idx += blockDim.x) {
        int j = idx / hd, d = idx % hd;
        float mx = NEG_INF;
#pragma unroll
        for (int w = 0; w < NW; ++w) mx = fmaxf(mx, sm_m[w][j]);
        float lsum = 0.0f, a = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; ++w) {
            float f = sm_l[w][j] > 0.0f ? exp_rt(sm_m[w][j] - mx) : 0.0f;
            lsum += sm_l[w][j] * f;
            a += sm_acc[w][j][d] * f;
        }
        if (used == 1) {
            orow[(size_t)(g * rep + j) * hd + d] = a / lsum;
        } else {
            // [row][query head][split][max, sum, acc...]
            float* pp = part + (((size_t)r * qh + g * rep + j) * splits + z) * (hd + 2);
            if (d == 0) {
                pp[0] = mx;
                pp[1] = lsum;
            }
            pp[2 + d] = a;
        }
    }
    if (used == 1) return;
    __shared__ int last;
    __threadfence();  // this thread's partials are visible to every block...
    __syncthreads();  // ...for all threads, before the block counts itself done
    if (threadIdx.x == 0) {
        unsigned* cnt = done + (size_t)r * kvh + g;
        last = atomicAdd(cnt, 1u) == (unsigned)used - 1;
        if (last) *cnt = 0;  // every other split has counted: ready for the next launch
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    // The other blocks' partials, read past L1 (volatile), merged in split order.
    for (int idx = threadIdx.x; idx < rep * hd; idx += blockDim.x) {
        int j = idx / hd, d = idx % hd;
        const volatile float* pp = part + ((size_t)r * qh + g * rep + j) * splits * (hd + 2);
        float mx = NEG_INF;
        for (int s = 0; s < used; ++s) mx = fmaxf(mx, pp[(size_t)s * (hd + 2)]);
        float lsum = 0.0f, a = 0.0f;
        for (int s = 0; s < used; ++s) {
            const volatile float* ps = pp + (size_t)s * (hd + 2);
            float f = exp_rt(ps[0] - mx);
            lsum += ps[1] * f;
            a += ps[2 + d] * f;
        }
        orow[(size_t)(g * rep + j) * hd + d] = a / lsum;
    }
}

// llama.cpp's f16 attention as the CPU build computes it
// (kernels/src/attention.rs, `attend_one` with round_probs), operation for
// operation, so both give the same bits: queries rounded to f16; each score a
// dot product in eight interleaved partial sums added in order, then scaled;
// the softmax sum taken in position order; the weights e/sum rounded to f16;
// each output dimension summed in position order. One warp per query head;
// lane l scores positions l, l + 32, ... and the sums run through the warp
// in order.
template <typename KV>
__device__ __forceinline__ float score_exact(const float* q, const unsigned short* k, int hd, float scale) {
    float a8[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int c8 = hd & ~7;
    for (int c = 0; c < c8; c += 8) {
#pragma unroll
        for (int i = 0; i < 8; ++i) a8[i] = a8[i] + round_h(q[c + i]) * KV::load(k[c + i]);
    }
    float tail = -0.0f;
    for (int c = c8; c < hd; ++c) tail = tail + round_h(q[c]) * KV::load(k[c]);
    float s = -0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) s = s + a8[i];
    return (s + tail) * scale;
}

template <int MAXD, int NW, typename KV>
__device__ __forceinline__ void attn_exact(const float* __restrict__ qkv, float* __restrict__ out,
                                           const int* __restrict__ meta, const u64* __restrict__ cache,
                                           int layer, int qh, int kvh, int hd, float scale) {
    int r = blockIdx.x, g = blockIdx.y;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int rep = qh / kvh, kvw = kvh * hd;
    int pos = meta[2 * r], cap = meta[2 * r + 1];
    const unsigned short* K = layer_k(cache, r, layer, cap, kvw) + (size_t)g * hd;
    const unsigned short* V = K + (size_t)cap * kvw;
    for (int j = warp; j < rep; j += NW) {
        const float* q = qkv + (size_t)r * (qh + 2 * kvh) * hd + (size_t)(g * rep + j) * hd;
        float m = NEG_INF;
        for (int p = lane; p <= pos; p += 32) m = fmaxf(m, score_exact<KV>(q, K + (size_t)p * kvw, hd, scale));
        m = warp_max(m);
        float sum = 0.0f;
        for (int base = 0; base <= pos; base += 32) {
            int p = base + lane;
            float e = p <= pos ? exp_rt(score_exact<KV>(q, K + (size_t)p * kvw, hd, scale) - m) : 0.0f;
            for (int i = 0; i < 32 && base + i <= pos; ++i) sum = sum + __shfl_sync(0xffffffffu, e, i);
        }
        float acc[MAXD];
#pragma unroll
        for (int d = 0; d < MAXD; ++d) acc[d] = 0.0f;
        for (int base = 0; base <= pos; base += 32) {
            int p = base + lane;
            float w = p <= pos ? round_h(exp_rt(score_exact<KV>(q, K + (size_t)p * kvw, hd, scale) - m) / sum) : 0.0f;
            for (int i = 0; i < 32 && base + i <= pos; ++i) {
                float wi = __shfl_sync(0xffffffffu, w, i);
                const unsigned short* vp = V + (size_t)(base + i) * kvw;
#pragma unroll
                for (int d = 0; d < MAXD; ++d) {
                    int dim = lane + 32 * d;
                    if (dim < hd) acc[d] = acc[d] + wi * KV::load(vp[dim]);
                }
            }
        }
        float* o = out + (size_t)r * qh * hd + (size_t)(g * rep + j) * hd;
#pragma unroll
        for (int d = 0; d < MAXD; ++d) {
            int dim = lane + 32 * d;
            if (dim < hd) o[dim] = acc[d];
        }
    }
}

#define ATTN(NAME, MAXD, NW, THREADS, KV)                                                          \
    extern "C" __global__ void __launch_bounds__(THREADS) NAME(                                     \
        const float* __restrict__ qkv, float* __restrict__ out, float* part, unsigned* __restrict__ done, \
        const int* __restrict__ meta, const u64* __restrict__ cache, int layer, int qh, int kvh, int hd, \
        float scale, int round_f16) {                                                               \
        if (round_f16)                                                                              \
            attn_exact<MAXD, NW, KV>(qkv, out, meta, cache, layer, qh, kvh, hd, scale);            \
        else                                                                                        \
            attn_impl<MAXD, NW, KV>(qkv, out, part, done, meta, cache, layer, qh, kvh, hd, scale); \
    }
ATTN(attention_bf16_d4, 4, 8, 256, Bf16Kv)
ATTN(attention_bf16_d8, 8, 4, 128, Bf16Kv)
ATTN(attention_f16_d4, 4, 8, 256, F16Kv)
ATTN(attention_f16_d8, 8, 4, 128, F16Kv)

// ---------------------------------------------------------------- elementwise
// out[r, i] = silu(gu[r, i]) * gu[r, ff + i]: gu rows are [gate (ff) | up (ff)].
extern "C" __global__ void swiglu(const float* __restrict__ gu, float* __restrict__ out, int ff, int rows) {
    size_t n = (size_t)ff * rows;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
        size_t r = t / ff, i = t % ff;
        float g = gu[r * 2 * ff + i], u = gu[r * 2 * ff + ff + i];
        out[t] = g / (1.0f + exp_rt(-g)) * u;
    }
}

// x += y (residual add), n elements.
extern "C" __global__ void add_f32(float* __restrict__ x, const float* __restrict__ y, int n) {
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < n; t += gridDim.x * blockDim.x) x[t] += y[t];
}

// out[r] = f32(table[ids[r]]) of a bf16 (or, with is_f16, f16) table, one
// block per row; ids outside the table give zeros.
extern "C" __global__ void embedding(const bf16_t* __restrict__ table, const int* __restrict__ ids,
                                     float* __restrict__ out, int hidden, int vocab, int is_f16) {
    int r = blockIdx.x, id = ids[r];
    float* o = out + (size_t)r * hidden;
    bool ok = id >= 0 && id < vocab;
    const bf16_t* t = table + (size_t)(ok ? id : 0) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = ok ? (is_f16 ? hf(t[i]) : bf(t[i])) : 0.0f;
}

// ---------------------------------------------------------------- GGUF blocks
// llama.cpp's numerics, as the CPU build computes them (kernels/src/quant.rs):
// activations are quantized per 32 values (scale amax/127 rounded to f16,
// quants rounded half away from zero, Q8_1's s = f16(d·Σq)), and each weight
// block's integer dot product (dp4a) is scaled in f32.
// Block layouts: Q4_0 {f16 d; u8 qs[16]} (18 bytes, x = (q - 8)·d),
// Q4_1 {f16 d, m; u8 qs[16]} (20, x = q·d + m), Q8_0 {f16 d; i8 qs[32]} (34).
#define QT_Q4_0 0
#define QT_Q4_1 1
#define QT_Q8_0 2

__device__ __forceinline__ int dp4a(int a, int b, int c) {
#ifdef REKA_CUDA_EMU
    for (int i = 0; i < 4; ++i) c += (int)(signed char)(a >> (8 * i)) * (int)(signed char)(b >> (8 * i));
    return c;
#else
    int r;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
#endif
}

// Four bytes at a 2-byte-aligned address.
__device__ __forceinline__ int ld4(const unsigned char* p) {
    const unsigned short* h = reinterpret_cast<const unsigned short*>(p);
    return (int)((unsigned)h[0] | ((unsigned)h[1] << 16));
}

__device__ __forceinline__ float ld_h(const unsigned char* p) {
    return hf(*reinterpret_cast<const unsigned short*>(p));
}

// One warp per block of 32 values: qs (i8), d and s (f32 holding f16 values).
extern "C" __global__ void quantize_q8(const float* __restrict__ x, signed char* __restrict__ qs,
                                       float* __restrict__ d, float* __restrict__ s, int nblocks) {
    int per = blockDim.x >> 5, lane = threadIdx.x & 31;
    for (int b = blockIdx.x * per + (threadIdx.x >> 5); b < nblocks; b += gridDim.x * per) {
        float v = x[(size_t)b * 32 + lane];
        float amax = warp_max(fabsf(v));
        float dd = amax / 127.0f;
        float id = dd != 0.0f ? 1.0f / dd : 0.0f;
        int q = (int)roundf(v * id);
        qs[(size_t)b * 32 + lane] = (signed char)q;
        int sum = warp_isum(q);
        if (lane == 0) {
            d[b] = round_h(dd);
            s[b] = round_h((float)sum * dd);
        }
    }
}

template <int QT> struct QBlock;
template <> struct QBlock<QT_Q4_0> { static const int bytes = 18; };
template <> struct QBlock<QT_Q4_1> { static const int bytes = 20; };
template <> struct QBlock<QT_Q8_0> { static const int bytes = 34; };

// y[b, r] (+)= W[r] · x[b] for NB quantized activation rows, as the CPU
// build computes it (kernels/src/quant.rs, the reference every CPU variant in
// quant_tiles reproduces), so both give the same bits: per block, in order,
// the exact integer dot product (eight lanes per weight row, lane L taking
// bytes 4L..4L+3 of the block, Q4 low nibbles first, summed across the lanes
// with shuffles), then acc = fma(sumi, d_w·d_x, acc) and, for Q4_1,
// acc = fma(m_w, s_x, acc). A warp takes four rows.
template <int QT, int NB>
__device__ __forceinline__ void gemv_q_impl(const unsigned char* __restrict__ W, const signed char* __restrict__ xq,
                                            const float* __restrict__ xd, const float* __restrict__ xs,
                                            float* __restrict__ y, int rows, int cols, int accumulate) {
    int t = (int)(blockIdx.x * (unsigned)blockDim.x + threadIdx.x);
    int row = t >> 3, L = t & 7;
    // Rows past the end compute (in bounds) but write nothing: their lanes
    // still take part in the shuffles.
    bool live = row < rows;
    int rr = live ? row : rows - 1;
    int nb = cols >> 5;
    const unsigned char* wr = W + (size_t)rr * nb * QBlock<QT>::bytes;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; ++b) acc[b] = 0.0f;
    for (int k = 0; k < nb; ++k) {
        const unsigned char* blk = wr + (size_t)k * QBlock<QT>::bytes;
        int w4;
        if (QT == QT_Q8_0) {
            w4 = ld4(blk + 2 + 4 * L);
        } else {
            int q = ld4(blk + (QT == QT_Q4_1 ? 4 : 2) + 4 * (L & 3));
            w4 = (L < 4 ? q : q >> 4) & 0x0f0f0f0f;
        }
        float dw = ld_h(blk);
#pragma unroll
        for (int b = 0; b < NB; ++b) {
            size_t ab = (size_t)b * nb + k;
            int a4 = *reinterpret_cast<const int*>(xq + ab * 32 + 4 * L);
            int sumi = dp4a(w4, a4, 0);
            if (QT == QT_Q4_0) sumi -= 8 * dp4a(0x01010101, a4, 0);
            sumi += __shfl_xor_sync(0xffffffffu, sumi, 4);
            sumi += __shfl_xor_sync(0xffffffffu, sumi, 2);
            sumi += __shfl_xor_sync(0xffffffffu, sumi, 1);
            float d = dw * xd[ab];
            acc[b] = fmaf((float)sumi, d, acc[b]);
            if (QT == QT_Q4_1) acc[b] = fmaf(ld_h(blk + 2), xs[ab], acc[b]);
        }
    }
#pragma unroll
    for (int b = 0; b < NB; ++b) {
        float v = acc[b];
        if (live && L == 0) {
            float* o = y + (size_t)b * rows + row;
            *o = accumulate ? *o + v : v;
        }
    }
}

#define GEMVQ(NAME, QT, NB)                                                                       \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                       \
        const unsigned char* __restrict__ W, const signed char* __restrict__ xq,                  \
        const float* __restrict__ xd, const float* __restrict__ xs, float* __restrict__ y,        \
        int rows, int cols, int accumulate) {                                                     \
        gemv_q_impl<QT, NB>(W, xq, xd, xs, y, rows, cols, accumulate);                            \
    }
GEMVQ(gemv_q4_0_1, QT_Q4_0, 1)
GEMVQ(gemv_q4_0_2, QT_Q4_0, 2)
GEMVQ(gemv_q4_0_4, QT_Q4_0, 4)
GEMVQ(gemv_q4_0_8, QT_Q4_0, 8)
GEMVQ(gemv_q4_1_1, QT_Q4_1, 1)
GEMVQ(gemv_q4_1_2, QT_Q4_1, 2)
GEMVQ(gemv_q4_1_4, QT_Q4_1, 4)
GEMVQ(gemv_q4_1_8, QT_Q4_1, 8)
GEMVQ(gemv_q8_0_1, QT_Q8_0, 1)
GEMVQ(gemv_q8_0_2, QT_Q8_0, 2)
GEMVQ(gemv_q8_0_4, QT_Q8_0, 4)
GEMVQ(gemv_q8_0_8, QT_Q8_0, 8)

// out[r] = the dequantized row ids[r] of a block table [vocab, hidden];
// ids outside the table give zeros. One block per row.
extern "C" __global__ void embedding_q(const unsigned char* __restrict__ table, const int* __restrict__ ids,
                                       float* __restrict__ out, int hidden, int vocab, int qt) {
    int r = blockIdx.x, id = ids[r];
    float* o = out + (size_t)r * hidden;
    bool ok = id >= 0 && id < vocab;
    int bytes = qt == QT_Q4_0 ? 18 : (qt == QT_Q4_1 ? 20 : 34);
    const unsigned char* t = table + (size_t)(ok ? id : 0) * (hidden / 32) * bytes;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        const unsigned char* blk = t + (size_t)(i >> 5) * bytes;
        int j = i & 31;
        float v;
        if (qt == QT_Q8_0) {
            v = (float)(signed char)blk[2 + j] * ld_h(blk);
        } else {
            const unsigned char* q = blk + (qt == QT_Q4_1 ? 4 : 2);
            int n = j < 16 ? (q[j] & 0x0f) : (q[j - 16] >> 4);
            v = qt == QT_Q4_1 ? (float)n * ld_h(blk) + ld_h(blk + 2) : (float)(n - 8) * ld_h(blk);
        }
        o[i] = ok ? v : 0.0f;
    }
}
