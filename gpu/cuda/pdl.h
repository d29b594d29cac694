// Programmatic dependent launch (Hopper and later). A kernel launched programmatically
// (launch_pdl, gpu/cuda/pdl.cuh) may be scheduled while the kernel before it on the
// stream is still draining: its blocks do what needs nothing from that kernel (the dense
// GEMVs load their first weights), then wait in dev::pdl_wait until it has finished and
// its writes are visible. Each such kernel lets the next one be scheduled
// (dev::pdl_trigger) once all of its blocks are running. In a CUDA graph the launches
// become programmatic edges. What this hides is the ~5 us a kernel pays between the end
// of one and the first loads of the next, ~10 times a layer in a batch-1 decode step.
// Plain C++ header.
#pragma once

namespace conclave::gpu::cuda {

/// Whether launch_pdl launches programmatically: the kernels carry sm_90 code (a Hopper
/// or later card running the sm_90a machine code; not compute_80 PTX compiled at load,
/// whose waits compile to nothing) and CONCLAVE_PDL is not "0". Decided on first use.
bool programmatic_launch_on();

/// Overrides that decision (tests compare both ways); `on` is still refused where the
/// kernels lack sm_90 code. Returns the previous setting.
bool set_programmatic_launch(bool on);

/// CONCLAVE_SMEM_CARVEOUT=P (0 to 100; unset: the driver's choice for each kernel): each
/// kernel launched through launch_pdl prefers P % of the SM's unified L1 / shared memory as
/// shared memory (cudaFuncAttributePreferredSharedMemoryCarveout, set on its first launch),
/// so that consecutive kernels of a step can share one configuration. Anything else is a
/// std::runtime_error naming the variable.
void prefer_carveout(const void* kernel);

}  // namespace conclave::gpu::cuda
