// The kernels of kernels/src/cuda/source.cu compiled for the CPU emulator,
// and the table the emulated driver finds them in by name. table.inc (made by
// scripts/build-cuda-emu.sh from KERNELS in kernels/src/cuda/mod.rs) holds one
// K(name) line per kernel.
#include "simt.h"

#include "../src/cuda/source.cu"

#include <utility>

#include "kernels.h"

namespace {
template <typename... A, size_t... I>
void call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<A*>(args[I])...);
}

template <typename F, F* f, typename... A>
struct Thunk;

template <typename... A, void (*f)(A...)>
struct Thunk<void(A...), f> {
    static void run(void** args) { call(f, args, std::index_sequence_for<A...>{}); }
    static KernelEntry entry(const char* name) {
        static const size_t sizes[] = {sizeof(A)..., 0};
        return KernelEntry{name, &run, sizes, sizeof...(A)};
    }
};
}  // namespace

#define K(name) Thunk<decltype(name), &name>::entry(#name),
const KernelEntry KERNEL_TABLE[] = {
#include "table.inc"
    KernelEntry{nullptr, nullptr, nullptr, 0},
};
