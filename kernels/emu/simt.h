// A CPU emulation of the CUDA C that kernels/src/cuda/source.cu uses, so the
// kernels themselves (compiled by g++ with -include simt.h) run on a machine
// without a GPU. Each CUDA thread is a fiber; the threads of one block run on
// the calling OS thread, switching at __syncthreads and at every warp shuffle,
// which waits until all 32 lanes of the warp arrive (a shuffle that some lane
// of the warp never reaches is reported as an error, as it is undefined on a
// GPU). One launch runs at a time (run_grid takes a lock) and its blocks one
// after another, so __shared__ variables are plain statics and the thread
// indices plain globals. For tests only: see docs/GPU.md, "The CPU emulator".
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#define REKA_CUDA_EMU 1
#define __device__ inline
#define __forceinline__
#define __global__
#define __launch_bounds__(...)
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(16) float4 {
    float x, y, z, w;
};

namespace emu {
// The running thread's index, and the launch's shape.
extern uint3 thread_idx, block_idx, block_dim, grid_dim;
// Blocks until every live thread of the block arrives.
void sync_block();
// Publishes 4 bytes for the warp, waits for all 32 lanes, and returns what
// lane `src` published.
uint32_t shuffle(uint32_t bits, int src);
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);
}  // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
inline void __syncthreads() { emu::sync_block(); }
// Blocks run one after another and threads switch only at barriers and
// shuffles, so memory is always coherent and an atomic is a plain update.
inline void __threadfence() {}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
    unsigned old = *p;
    *p = old + v;
    return old;
}

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    static_assert(sizeof(T) == 4, "4-byte shuffles only");
    if (mask != 0xffffffffu) __builtin_trap();  // only full-warp shuffles are emulated
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits = emu::shuffle(bits, (int)(emu::thread_idx.x & 31) ^ lane_mask);
    memcpy(&v, &bits, 4);
    return v;
}

namespace emu {
// Runs `body` as every thread of a grid (blocks one after another; one grid
// at a time, whichever OS thread calls). Returns
// an empty string, or why the launch failed (a shuffle or barrier that not
// every thread reaches, a block shape the emulator does not take).
typedef void (*Body)(void* ctx);
const char* run_grid(uint3 grid, uint3 block, Body body, void* ctx);
}  // namespace emu

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane) {
    static_assert(sizeof(T) == 4, "4-byte shuffles only");
    if (mask != 0xffffffffu) __builtin_trap();
    uint32_t bits;
    memcpy(&bits, &v, 4);
    bits = emu::shuffle(bits, src_lane & 31);
    memcpy(&v, &bits, 4);
    return v;
}
