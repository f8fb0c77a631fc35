// host_device.h: HKT_HOST_DEVICE marks a function that runs on the CPU and, compiled by
// nvcc, in CUDA kernels too. Every formula shared by the CPU ops and the CUDA backend
// (random numbers, scalar functors) carries it, so both devices compute with one source.
#pragma once

#if defined(__CUDACC__)
#define HKT_HOST_DEVICE __host__ __device__
#else
#define HKT_HOST_DEVICE
#endif
