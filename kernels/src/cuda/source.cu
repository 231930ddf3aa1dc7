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

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// 16 bytes of weights that are read exactly once: skip L1.
__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
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
extern "C" __global__ void rms_norm(const float* __restrict__ x, const float* __restrict__ w,
                                    float* __restrict__ y, const int* __restrict__ rows,
                                    int n, float eps) {
    int r = blockIdx.x;
    int src = rows ? rows[r] : r;
    const float* xr = x + (size_t)src * n;
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += xr[i] * xr[i];
    float inv = rsqrtf(block_sum(s) / (float)n + eps);
    float* yr = y + (size_t)r * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * inv * w[i];
}

// ---------------------------------------------------------------- GEMV
// y[b, r] (+)= sum_c W[r, c] · x[b, c] for NB activation rows at once: one warp
// per weight row, 16-byte loads of 8 bf16 weights, four in flight per lane,
// every weight read once for all NB rows. cols % 8 == 0.
__device__ __forceinline__ void fma8(float& acc, uint4 w, const float* xb) {
    float4 a = *reinterpret_cast<const float4*>(xb);
    float4 c = *reinterpret_cast<const float4*>(xb + 4);
    acc = fmaf(bf_lo(w.x), a.x, acc);
    acc = fmaf(bf_hi(w.x), a.y, acc);
    acc = fmaf(bf_lo(w.y), a.z, acc);
    acc = fmaf(bf_hi(w.y), a.w, acc);
    acc = fmaf(bf_lo(w.z), c.x, acc);
    acc = fmaf(bf_hi(w.z), c.y, acc);
    acc = fmaf(bf_lo(w.w), c.z, acc);
    acc = fmaf(bf_hi(w.w), c.w, acc);
}

template <int NB>
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
            fma8(acc[b], w0, xb);
            fma8(acc[b], w1, xb + 256);
            fma8(acc[b], w2, xb + 512);
            fma8(acc[b], w3, xb + 768);
        }
    }
    for (; i < n8; i += 32) {
        uint4 w0 = ld_stream(wr + i);
#pragma unroll
        for (int b = 0; b < NB; ++b) fma8(acc[b], w0, x + (size_t)b * cols + 8 * i);
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

#define GEMV(NB)                                                                              \
    extern "C" __global__ void __launch_bounds__(256) gemv_bf16_##NB(                         \
        const bf16_t* __restrict__ W, const float* __restrict__ x, float* __restrict__ y,     \
        int rows, int cols, int accumulate) {                                                 \
        gemv_impl<NB>(W, x, y, rows, cols, accumulate);                                       \
    }
GEMV(1)
GEMV(2)
GEMV(4)
GEMV(8)
GEMV(16)
GEMV(32)

// ---------------------------------------------------------------- RoPE + KV append
// For each row r (at position pos[r] of the session whose cache starts at
// cache[r]): rotates the q heads of qkv[r] in place, rotates the k heads and
// stores them as bf16 into the layer's K plane, and stores v into the V plane.
// qkv rows are [q (qh·hd) | k (kvh·hd) | v (kvh·hd)]. A session's cache is
// [layer][K, V][cap][kvh·hd] bf16; meta[2r] = pos, meta[2r+1] = cap.
// interleaved: pairs (2i, 2i+1) (GGUF); else halves (i, i + hd/2) (HF).
extern "C" __global__ void rope_kv_append(float* __restrict__ qkv, const float* __restrict__ cos_t,
                                          const float* __restrict__ sin_t, const int* __restrict__ meta,
                                          const u64* __restrict__ cache, int layer, int qh, int kvh,
                                          int hd, int interleaved) {
    int r = blockIdx.x;
    int pos = meta[2 * r], cap = meta[2 * r + 1];
    int half = hd / 2, kvw = kvh * hd;
    float* row = qkv + (size_t)r * (qh + 2 * kvh) * hd;
    bf16_t* kc = reinterpret_cast<bf16_t*>(cache[r]) + (size_t)layer * 2 * cap * kvw + (size_t)pos * kvw;
    bf16_t* vc = kc + (size_t)cap * kvw;
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
            bf16_t* k = kc + (size_t)(head - qh) * hd;
            k[a] = to_bf(y0);
            k[b] = to_bf(y1);
        }
    }
    const float* v = row + (size_t)(qh + kvh) * hd;
    for (int j = threadIdx.x; j < kvw; j += blockDim.x) vc[j] = to_bf(v[j]);
}

// ---------------------------------------------------------------- decode attention
// One block per (row, kv head): the rep = qh / kvh query heads that share the
// kv head read each cached key and value once. Warps take positions
// round-robin with an online softmax each; the block then merges the warps'
// (max, sum, acc). Lane l holds dims l, l + 32, ... (MAXD of them).
// Row r attends over positions 0..=pos[r] of its session (causal).
#define MAXREP 8
template <int MAXD, int NW>
__device__ __forceinline__ void attn_impl(const float* __restrict__ qkv, float* __restrict__ out,
                                          const int* __restrict__ meta, const u64* __restrict__ cache,
                                          int layer, int qh, int kvh, int hd, float scale) {
    __shared__ float sm_m[NW][MAXREP], sm_l[NW][MAXREP];
    __shared__ float sm_acc[NW][MAXREP][MAXD * 32];
    int r = blockIdx.x, g = blockIdx.y;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int rep = qh / kvh, kvw = kvh * hd;
    int pos = meta[2 * r], cap = meta[2 * r + 1];
    const bf16_t* K = reinterpret_cast<const bf16_t*>(cache[r]) + (size_t)layer * 2 * cap * kvw + (size_t)g * hd;
    const bf16_t* V = K + (size_t)cap * kvw;
    const float* qrow = qkv + (size_t)r * (qh + 2 * kvh) * hd;
    float q[MAXREP][MAXD], acc[MAXREP][MAXD], m[MAXREP], l[MAXREP];
#pragma unroll
    for (int j = 0; j < MAXREP; ++j) {
        m[j] = NEG_INF;
        l[j] = 0.0f;
#pragma unroll
        for (int d = 0; d < MAXD; ++d) {
            int dim = lane + 32 * d;
            q[j][d] = (j < rep && dim < hd) ? qrow[(size_t)(g * rep + j) * hd + dim] * scale : 0.0f;
            acc[j][d] = 0.0f;
        }
    }
    for (int p = warp; p <= pos; p += NW) {
        float k[MAXD], v[MAXD];
#pragma unroll
        for (int d = 0; d < MAXD; ++d) {
            int dim = lane + 32 * d;
            k[d] = dim < hd ? bf(K[(size_t)p * kvw + dim]) : 0.0f;
            v[d] = dim < hd ? bf(V[(size_t)p * kvw + dim]) : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < MAXREP; ++j) {
            if (j < rep) {
                float s = 0.0f;
#pragma unroll
                for (int d = 0; d < MAXD; ++d) s = fmaf(q[j][d], k[d], s);
                s = warp_sum(s);
                float mn = fmaxf(m[j], s);
                float corr = __expf(m[j] - mn), e = __expf(s - mn);
                l[j] = l[j] * corr + e;
#pragma unroll
                for (int d = 0; d < MAXD; ++d) acc[j][d] = fmaf(acc[j][d], corr, e * v[d]);
                m[j] = mn;
            }
        }
    }
#pragma unroll
    for (int j = 0; j < MAXREP; ++j) {
        if (lane == 0) {
            sm_m[warp][j] = m[j];
            sm_l[warp][j] = l[j];
        }
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
            float f = sm_l[w][j] > 0.0f ? __expf(sm_m[w][j] - mx) : 0.0f;
            lsum += sm_l[w][j] * f;
            a += sm_acc[w][j][d] * f;
        }
        orow[(size_t)(g * rep + j) * hd + d] = a / lsum;
    }
}

extern "C" __global__ void __launch_bounds__(256) attention_d4(
    const float* __restrict__ qkv, float* __restrict__ out, const int* __restrict__ meta,
    const u64* __restrict__ cache, int layer, int qh, int kvh, int hd, float scale) {
    attn_impl<4, 8>(qkv, out, meta, cache, layer, qh, kvh, hd, scale);
}

extern "C" __global__ void __launch_bounds__(128) attention_d8(
    const float* __restrict__ qkv, float* __restrict__ out, const int* __restrict__ meta,
    const u64* __restrict__ cache, int layer, int qh, int kvh, int hd, float scale) {
    attn_impl<8, 4>(qkv, out, meta, cache, layer, qh, kvh, hd, scale);
}

// ---------------------------------------------------------------- elementwise
// out[r, i] = silu(gu[r, i]) * gu[r, ff + i]: gu rows are [gate (ff) | up (ff)].
extern "C" __global__ void swiglu(const float* __restrict__ gu, float* __restrict__ out, int ff, int rows) {
    size_t n = (size_t)ff * rows;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
        size_t r = t / ff, i = t % ff;
        float g = gu[r * 2 * ff + i], u = gu[r * 2 * ff + ff + i];
        out[t] = g / (1.0f + __expf(-g)) * u;
    }
}

// x += y (residual add), n elements.
extern "C" __global__ void add_f32(float* __restrict__ x, const float* __restrict__ y, int n) {
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < n; t += gridDim.x * blockDim.x) x[t] += y[t];
}

// out[r] = f32(table[ids[r]]), one block per row; ids outside the table give zeros.
extern "C" __global__ void embedding(const bf16_t* __restrict__ table, const int* __restrict__ ids,
                                     float* __restrict__ out, int hidden, int vocab) {
    int r = blockIdx.x, id = ids[r];
    float* o = out + (size_t)r * hidden;
    bool ok = id >= 0 && id < vocab;
    const bf16_t* t = table + (size_t)(ok ? id : 0) * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = ok ? bf(t[i]) : 0.0f;
}
