// Function multiversioning for the hot loops: a marked function is compiled for
// AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and baseline x86-64, and the loader
// picks one for the CPU through an ifunc resolver. For the layers' own loops
// (core's kernels, the optimizers' updates, the monitor's statistics), not
// part of the API.
//
// XG_CLONES_V4_V3: all three, with flatten so the templates a clone calls are
// compiled for its target too. Clang refuses flatten on a multiversioned
// function; there (the fuzzing build only) the clones call baseline templates.
//
// None under ThreadSanitizer: the resolver runs during relocation, before the
// TSan runtime is up, and crashes in its instrumentation.
//
// XG_CLONES_AVX2_AT_MOST (CMake's XGRAD_AVX2_CLONES_AT_MOST, for benchmarks):
// no AVX-512 clone, so an AVX-512 machine runs the AVX2 code that CPUs without
// AVX-512 run, and that path can be measured there.
#pragma once

#if defined(XG_CLONES_AVX2_AT_MOST)
#define XG_CLONE_TARGETS "arch=x86-64-v3", "default"
#else
#define XG_CLONE_TARGETS "arch=x86-64-v4", "arch=x86-64-v3", "default"
#endif

#if defined(__SANITIZE_THREAD__)
#define XG_CLONES_V4_V3
#elif defined(__clang__)
#define XG_CLONES_V4_V3 __attribute__((target_clones(XG_CLONE_TARGETS)))
#else
#define XG_CLONES_V4_V3 __attribute__((target_clones(XG_CLONE_TARGETS), flatten))
#endif

// Before a loop whose elements are independent although its pointers may alias
// (an output written over its input, element for element). GCC only: clang
// builds only the fuzz targets, where speed does not matter and its sanitizer
// instrumentation makes it warn that it cannot honour the hint.
#if defined(__clang__)
#define XG_IVDEP
#else
#define XG_IVDEP _Pragma("GCC ivdep")
#endif
