// What the emulated driver knows of a kernel: its name, how to call it with
// cuLaunchKernel's argument array, and each argument's size (to copy the
// arguments of a launch recorded into a graph).
#pragma once
#include <stddef.h>

struct KernelEntry {
    const char* name;
    void (*run)(void** args);
    const size_t* arg_sizes;
    size_t n_args;
};

// Ends with an entry whose name is null.
extern const KernelEntry KERNEL_TABLE[];
