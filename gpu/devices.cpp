// GPU description for logs and benchmarks.
#include "gpu/devices.h"

#ifdef CONCLAVE_HAVE_CUDA
#include "gpu/cuda/device_buffer.h"
#include "gpu/cuda/device_info.h"
#endif

namespace conclave::gpu {

bool cuda_built() {
#ifdef CONCLAVE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::string describe_gpus() {
#ifdef CONCLAVE_HAVE_CUDA
  return cuda::describe_devices();
#else
  return "no GPU: CUDA backend not built (CONCLAVE_CUDA=OFF or no nvcc)";
#endif
}

std::string gpu_uuid(int ordinal) {
#ifdef CONCLAVE_HAVE_CUDA
  return cuda::device_uuid(ordinal);
#else
  (void)ordinal;
  return "";
#endif
}

int visible_gpus() {
#ifdef CONCLAVE_HAVE_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

}  // namespace conclave::gpu
