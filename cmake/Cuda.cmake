# CONCLAVE_CUDA=AUTO|ON|OFF: the CUDA backend is built when nvcc is usable (AUTO) or
# demanded (ON). The CPU build never needs CUDA.
set(CONCLAVE_HAVE_CUDA OFF)
if(NOT CONCLAVE_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # One binary for Ampere and later: sm_80 machine code (it also runs on sm_86 and sm_89
    # cards: same major version), sm_90a for Hopper, sm_100 for Blackwell (B200, and B300
    # by the same rule), and compute_80 PTX that the driver compiles at load for anything
    # newer (sm_120, ...). Every kernel has an sm_80 path (mma.sync, cp.async); a build
    # with CMAKE_CUDA_ARCHITECTURES=80 runs that path on a Hopper card (the driver JIT-
    # compiles its PTX). Set CMAKE_CUDA_ARCHITECTURES to build for one card only (faster).
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90a-real 100-real)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)
    set(CONCLAVE_HAVE_CUDA ON)
  elseif(CONCLAVE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "CONCLAVE_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  endif()
endif()
message(STATUS "conclave: CUDA backend ${CONCLAVE_HAVE_CUDA}")

# NCCL (CUDA 13's /usr/local/cuda/include/nccl.h and lib64/libnccl.so): the communicator of
# GPU ranks on separate devices (gpu/cuda/nccl_communicator.cpp). Optional: without it
# make_nccl_communicator throws and GPU ranks talk over Gloo.
set(CONCLAVE_HAVE_NCCL OFF)
if(CONCLAVE_HAVE_CUDA)
  find_path(CONCLAVE_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(CONCLAVE_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(CONCLAVE_NCCL_INCLUDE_DIR AND CONCLAVE_NCCL_LIBRARY)
    set(CONCLAVE_HAVE_NCCL ON)
  endif()
  message(STATUS "conclave: NCCL ${CONCLAVE_HAVE_NCCL} (${CONCLAVE_NCCL_LIBRARY})")
endif()
