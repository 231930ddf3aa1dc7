// The SIMT scheduler of the CPU emulator (simt.h): fibers with their own
// stacks, switched by a few lines of x86-64 assembly (no system call per
// switch, unlike swapcontext), and the barriers that release them.
#include "simt.h"

#include <stdio.h>
#include <sys/mman.h>

#include <mutex>
#include <vector>

#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch is written for x86-64"
#endif

// emu_switch(save, next): saves the callee-saved registers and the stack
// pointer into *save, then resumes the fiber whose stack pointer is `next`.
extern "C" void emu_switch(void** save, void* next);
asm(R"(
    .text
    .globl emu_switch
    .hidden emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");

namespace emu {
uint3 thread_idx, block_idx, block_dim, grid_dim;

namespace {
enum State : unsigned char { Ready, AtWarp, AtBlock, Done };

// Each fiber's stack (its lowest page a guard); the tops are staggered by a few
// cache lines so that the fibers' hot frames do not all fall into the same
// cache sets.
const size_t STACK = 32 << 10;

struct Sched {
    char* stacks = nullptr;
    size_t cap = 0;
    std::vector<void*> sp;
    std::vector<State> st;
    std::vector<unsigned char> parity;  // which of the two shuffle buffers a thread uses next
    std::vector<uint32_t> slot;         // [warp][2][32]
    std::vector<uint3> idx;             // threadIdx of each thread
    void* home = nullptr;               // the scheduler's stack pointer
    int cur = 0;
    Body body = nullptr;
    void* ctx = nullptr;
};
Sched S;
std::mutex one_grid;  // guards S, the indices and the kernels' __shared__ statics

void yield() { emu_switch(&S.sp[S.cur], S.home); }

[[noreturn]] void fiber_main() {
    S.body(S.ctx);
    S.st[S.cur] = Done;
    emu_switch(&S.sp[S.cur], S.home);
    __builtin_trap();
}

void reserve(size_t n) {
    if (n <= S.cap) return;
    if (S.stacks) munmap(S.stacks, S.cap * STACK);
    void* p = mmap(nullptr, n * STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) __builtin_trap();
    S.stacks = static_cast<char*>(p);
    S.cap = n;
    // A fiber that overflows its stack faults instead of writing into the next one.
    for (size_t t = 0; t < n; ++t) mprotect(S.stacks + t * STACK, 4096, PROT_NONE);
}

// A fresh stack for thread t that starts in fiber_main: six zero registers for
// emu_switch to pop, then fiber_main as its return address, with the stack
// aligned as at a function's entry.
void* fresh_stack(size_t t) {
    uintptr_t top = reinterpret_cast<uintptr_t>(S.stacks + (t + 1) * STACK - (t % 61) * 192) & ~uintptr_t(15);
    void** p = reinterpret_cast<void**>(top);
    *--p = nullptr;
    *--p = reinterpret_cast<void*>(&fiber_main);
    for (int i = 0; i < 6; ++i) *--p = nullptr;
    return p;
}

thread_local char why[256];  // the caller reads it after the lock is gone

const char* fail(const char* fmt, unsigned a, unsigned b) {
    snprintf(why, sizeof why, fmt, a, b);
    return why;
}

// Runs warp by warp: a warp's lanes run until each waits at a shuffle (then
// the warp is released and goes on, its stacks still in cache), at
// __syncthreads, or has exited; a warp whose lanes stop at different places
// is an error. Once every warp is at the barrier or done, it is released.
const char* run_block(unsigned n) {
    unsigned bx = block_dim.x, by = block_dim.y;
    for (unsigned t = 0; t < n; ++t) {
        S.sp[t] = fresh_stack(t);
        S.st[t] = Ready;
        S.parity[t] = 0;
        S.idx[t] = uint3{t % bx, (t / bx) % by, t / (bx * by)};
    }
    for (;;) {
        unsigned done = 0;
        for (unsigned w = 0; w * 32 < n; ++w) {
            unsigned lo = w * 32, hi = lo + 32;
            for (;;) {
                unsigned at = 0;
                for (unsigned t = lo; t < hi; ++t) {
                    if (S.st[t] == Ready) {
                        S.cur = (int)t;
                        thread_idx = S.idx[t];
                        emu_switch(&S.home, S.sp[t]);
                    }
                    at += S.st[t] == AtWarp;
                }
                if (at == 32) {
                    for (unsigned t = lo; t < hi; ++t) S.st[t] = Ready;
                    continue;
                }
                if (at > 0) return fail("warp %u: a shuffle that only %u of its 32 lanes reach", w, at);
                break;
            }
            for (unsigned t = lo; t < hi; ++t) done += S.st[t] == Done;
        }
        if (done == n) return nullptr;
        // Every live thread waits at __syncthreads (exited ones count as arrived).
        for (unsigned t = 0; t < n; ++t)
            if (S.st[t] == AtBlock) S.st[t] = Ready;
    }
}
}  // namespace

void sync_block() {
    S.st[S.cur] = AtBlock;
    yield();
}

uint32_t shuffle(uint32_t bits, int src) {
    int t = S.cur, w = t >> 5, lane = t & 31, p = S.parity[t];
    S.parity[t] ^= 1;
    S.slot[(size_t)(w * 2 + p) * 32 + lane] = bits;
    S.st[t] = AtWarp;
    yield();
    return S.slot[(size_t)(w * 2 + p) * 32 + (src & 31)];
}

uint16_t f32_to_f16(float f) {
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

float f16_to_f32(uint16_t u) {
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}

const char* run_grid(uint3 grid, uint3 block, Body body, void* ctx) {
    std::lock_guard<std::mutex> lock(one_grid);
    size_t n = (size_t)block.x * block.y * block.z;
    if (n == 0 || n > 1024 || n % 32 != 0) return fail("a block of %u threads (the emulator takes multiples of 32, up to %u)", (unsigned)n, 1024);
    reserve(n);
    S.sp.resize(n);
    S.st.resize(n);
    S.parity.resize(n);
    S.slot.resize(n * 2);
    S.idx.resize(n);
    S.body = body;
    S.ctx = ctx;
    grid_dim = grid;
    block_dim = block;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                block_idx = uint3{x, y, z};
                if (const char* e = run_block((unsigned)n)) return e;
            }
    return nullptr;
}
}  // namespace emu
