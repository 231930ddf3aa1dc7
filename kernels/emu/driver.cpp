// The part of the CUDA driver API (libcuda.so) that cudarc calls for
// reka_kernels::cuda, over host memory and the SIMT emulator (simt.h): one
// emulated device, "device" pointers that are host addresses, and launches
// that run when they are issued (so every stream is always idle). Stream
// capture records launches, device-to-device copies and memsets for replay;
// allocating, freeing or copying from or to the host while a stream captures
// is refused, as the kernels' users promise not to do it. A kernel is found by
// its name, which must also be an entry of the PTX handed to cuModuleLoadData:
// NVRTC still compiles source.cu, the emulator runs the g++ build of it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "kernels.h"
#include "simt.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum : CUresult {
    OK = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    INVALID_DEVICE = 101,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
    LAUNCH_FAILED = 719,
    CAPTURE_UNSUPPORTED = 900,
    CAPTURE_UNMATCHED = 903,
};

namespace {
using Clock = std::chrono::steady_clock;
const char* DEVICE_NAME = "reka CUDA emulator (CPU)";
const size_t TOTAL_MEM = 64ull << 30;

struct Launch {
    const KernelEntry* k;
    uint3 grid, block;
    std::vector<std::vector<char>> args;
};
// One recorded step of a graph: a launch, a copy or a memset.
struct Node {
    enum { Kernel, Copy, Set } kind;
    Launch launch;
    CUdeviceptr dst = 0, src = 0;
    size_t bytes = 0;
    unsigned char value = 0;
};
struct Graph {
    std::vector<Node> nodes;
};
struct Stream {
    Graph* capture = nullptr;
};
struct Module {
    std::string ptx;
};

thread_local int capturing = 0;  // streams capturing on this thread (thread-local capture mode)
std::mutex live_mu;
std::unordered_set<Stream*> live_streams;

bool has_entry(const std::string& ptx, const char* name) {
    return ptx.find(std::string(".entry ") + name + "(") != std::string::npos;
}

struct Args {
    const KernelEntry* k;
    void** args;
};

void body(void* ctx) {
    Args* a = static_cast<Args*>(ctx);
    a->k->run(a->args);
}

CUresult run(const KernelEntry* k, uint3 grid, uint3 block, void** args) {
    Args a{k, args};
    if (const char* why = emu::run_grid(grid, block, &body, &a)) {
        fprintf(stderr, "cuda-emu: %s failed: %s\n", k->name, why);
        return LAUNCH_FAILED;
    }
    return OK;
}

CUresult replay(const Graph& g) {
    for (const Node& n : g.nodes) {
        switch (n.kind) {
            case Node::Kernel: {
                std::vector<void*> ptrs;
                for (const auto& a : n.launch.args) ptrs.push_back(const_cast<char*>(a.data()));
                if (CUresult r = run(n.launch.k, n.launch.grid, n.launch.block, ptrs.data())) return r;
                break;
            }
            case Node::Copy:
                memmove(reinterpret_cast<void*>(n.dst), reinterpret_cast<const void*>(n.src), n.bytes);
                break;
            case Node::Set:
                memset(reinterpret_cast<void*>(n.dst), n.value, n.bytes);
                break;
        }
    }
    return OK;
}

Graph* capture_of(void* stream) { return stream ? static_cast<Stream*>(stream)->capture : nullptr; }
}  // namespace

#define API extern "C" __attribute__((visibility("default")))

API CUresult cuInit(unsigned) { return OK; }
API CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return OK;
}
API CUresult cuDeviceGetCount(int* n) {
    *n = 1;
    return OK;
}
API CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (ordinal != 0) return INVALID_DEVICE;
    *d = 0;
    return OK;
}
API CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    snprintf(name, (size_t)len, "%s", DEVICE_NAME);
    return OK;
}
API CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    *bytes = TOTAL_MEM;
    return OK;
}
API CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice) {
    switch (attr) {
        case 75: *v = 9; break;    // compute capability major: H100's
        case 76: *v = 0; break;    // minor
        case 16: *v = 132; break;  // multiprocessors
        case 1: *v = 1024; break;  // max threads per block
        case 10: *v = 32; break;   // warp size
        case 115: *v = 1; break;   // memory pools (cuMemAllocAsync) supported
        default: *v = 0;
    }
    return OK;
}
API CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice) {
    static int the_context;
    *ctx = &the_context;
    return OK;
}
API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return OK; }
API CUresult cuCtxSetCurrent(void*) { return OK; }
API CUresult cuCtxGetCurrent(void** ctx) { return cuDevicePrimaryCtxRetain(ctx, 0); }
API CUresult cuCtxSynchronize() { return OK; }
API CUresult cuMemGetInfo_v2(size_t* free_, size_t* total) {
    *free_ = TOTAL_MEM;
    *total = TOTAL_MEM;
    return OK;
}

// ---- streams and events: launches run when issued, so all are complete.
API CUresult cuStreamCreate(void** s, unsigned) {
    Stream* st = new Stream;
    std::lock_guard<std::mutex> g(live_mu);
    live_streams.insert(st);
    *s = st;
    return OK;
}
API CUresult cuStreamCreateWithPriority(void** s, unsigned f, int) { return cuStreamCreate(s, f); }
API CUresult cuStreamDestroy_v2(void* s) {
    std::lock_guard<std::mutex> g(live_mu);
    if (!live_streams.erase(static_cast<Stream*>(s))) return INVALID_HANDLE;
    delete static_cast<Stream*>(s);
    return OK;
}
API CUresult cuStreamSynchronize(void* s) { return capture_of(s) ? CAPTURE_UNSUPPORTED : OK; }
API CUresult cuStreamQuery(void*) { return OK; }
API CUresult cuStreamWaitEvent(void*, void*, unsigned) { return OK; }
// An event holds the time it was recorded at: the emulator's own (slow) time.
API CUresult cuEventCreate(void** e, unsigned) {
    *e = new Clock::time_point(Clock::now());
    return OK;
}
API CUresult cuEventDestroy_v2(void* e) {
    delete static_cast<Clock::time_point*>(e);
    return OK;
}
API CUresult cuEventRecord(void* e, void*) {
    *static_cast<Clock::time_point*>(e) = Clock::now();
    return OK;
}
API CUresult cuEventRecordWithFlags(void* e, void* s, unsigned) { return cuEventRecord(e, s); }
API CUresult cuEventSynchronize(void*) { return OK; }
API CUresult cuEventQuery(void*) { return OK; }
API CUresult cuEventElapsedTime(float* ms, void* start, void* end) {
    auto d = *static_cast<Clock::time_point*>(end) - *static_cast<Clock::time_point*>(start);
    *ms = std::chrono::duration<float, std::milli>(d).count();
    return OK;
}

// ---- memory: 256-byte-aligned host allocations, as device allocations are.
API CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    if (capturing) return CAPTURE_UNSUPPORTED;
    void* m = aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (!m) return OUT_OF_MEMORY;
    *p = reinterpret_cast<CUdeviceptr>(m);
    return OK;
}
API CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, void*) { return cuMemAlloc_v2(p, bytes); }
API CUresult cuMemFree_v2(CUdeviceptr p) {
    if (capturing) return CAPTURE_UNSUPPORTED;
    free(reinterpret_cast<void*>(p));
    return OK;
}
API CUresult cuMemFreeAsync(CUdeviceptr p, void*) { return cuMemFree_v2(p); }
API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
    if (capturing) return CAPTURE_UNSUPPORTED;
    memcpy(reinterpret_cast<void*>(dst), src, n);
    return OK;
}
API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, void*) { return cuMemcpyHtoD_v2(dst, src, n); }
API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
    if (capturing) return CAPTURE_UNSUPPORTED;
    memcpy(dst, reinterpret_cast<const void*>(src), n);
    return OK;
}
API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, void*) { return cuMemcpyDtoH_v2(dst, src, n); }
API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void* s) {
    if (Graph* g = capture_of(s)) {
        Node node{Node::Copy, {}, dst, src, n, 0};
        g->nodes.push_back(std::move(node));
        return OK;
    }
    memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), n);
    return OK;
}
API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) { return cuMemcpyDtoDAsync_v2(dst, src, n, nullptr); }
API CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, void* s) {
    if (Graph* g = capture_of(s)) {
        Node node{Node::Set, {}, dst, 0, n, v};
        g->nodes.push_back(std::move(node));
        return OK;
    }
    memset(reinterpret_cast<void*>(dst), v, n);
    return OK;
}
API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) { return cuMemsetD8Async(dst, v, n, nullptr); }

// ---- modules and launches
API CUresult cuModuleLoadData(void** m, const void* image) {
    if (!image) return INVALID_VALUE;
    *m = new Module{static_cast<const char*>(image)};
    return OK;
}
API CUresult cuModuleUnload(void* m) {
    delete static_cast<Module*>(m);
    return OK;
}
API CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
    if (!has_entry(static_cast<Module*>(m)->ptx, name)) return NOT_FOUND;
    for (const KernelEntry* k = KERNEL_TABLE; k->name; ++k) {
        if (strcmp(k->name, name) == 0) {
            *f = const_cast<KernelEntry*>(k);
            return OK;
        }
    }
    return NOT_FOUND;
}
API CUresult cuFuncGetAttribute(int* v, int, void*) {
    *v = 0;
    return OK;
}
API CUresult cuFuncSetAttribute(void*, int, int) { return OK; }
API CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                            unsigned shared, void* s, void** params, void** extra) {
    const KernelEntry* k = static_cast<const KernelEntry*>(f);
    if (!k || extra || shared != 0 || (k->n_args && !params)) return INVALID_VALUE;
    if ((size_t)gx * gy * gz == 0) return INVALID_VALUE;
    uint3 grid{gx, gy, gz}, block{bx, by, bz};
    if (Graph* g = capture_of(s)) {
        Node node{Node::Kernel, Launch{k, grid, block, {}}, 0, 0, 0, 0};
        for (size_t i = 0; i < k->n_args; ++i) {
            const char* a = static_cast<const char*>(params[i]);
            node.launch.args.emplace_back(a, a + k->arg_sizes[i]);
        }
        g->nodes.push_back(std::move(node));
        return OK;
    }
    return run(k, grid, block, params);
}

// ---- graphs
API CUresult cuStreamBeginCapture_v2(void* s, int) {
    if (!s || capture_of(s)) return INVALID_VALUE;
    static_cast<Stream*>(s)->capture = new Graph;
    ++capturing;
    return OK;
}
API CUresult cuStreamEndCapture(void* s, void** graph) {
    Graph* g = capture_of(s);
    if (!g) return CAPTURE_UNMATCHED;
    static_cast<Stream*>(s)->capture = nullptr;
    --capturing;
    *graph = g->nodes.empty() ? nullptr : g;
    if (g->nodes.empty()) delete g;
    return OK;
}
API CUresult cuStreamIsCapturing(void* s, int* status) {
    *status = capture_of(s) ? 1 : 0;
    return OK;
}
API CUresult cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long) {
    if (!graph) return INVALID_VALUE;
    *exec = new Graph(*static_cast<Graph*>(graph));
    return OK;
}
API CUresult cuGraphUpload(void*, void*) { return OK; }
API CUresult cuGraphLaunch(void* exec, void* s) {
    if (capture_of(s)) return CAPTURE_UNSUPPORTED;
    return replay(*static_cast<Graph*>(exec));
}
API CUresult cuGraphExecDestroy(void* exec) {
    delete static_cast<Graph*>(exec);
    return OK;
}
API CUresult cuGraphDestroy(void* graph) {
    delete static_cast<Graph*>(graph);
    return OK;
}

// ---- errors
API CUresult cuGetErrorName(CUresult r, const char** s) {
    switch (r) {
        case OK: *s = "CUDA_SUCCESS"; break;
        case INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
        case OUT_OF_MEMORY: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
        case NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; break;
        case LAUNCH_FAILED: *s = "CUDA_ERROR_LAUNCH_FAILED"; break;
        case CAPTURE_UNSUPPORTED: *s = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"; break;
        default: *s = "CUDA_ERROR_UNKNOWN";
    }
    return OK;
}
API CUresult cuGetErrorString(CUresult r, const char** s) { return cuGetErrorName(r, s); }
