// A communicator of device buffers between ranks that are threads of one process: the
// device exchange of an expert-parallel replica without NCCL, for tests and benches on
// one GPU (NCCL refuses two ranks on one device) or on several (peer copies). Every
// collective meets at a barrier, each rank copies what it receives out of its peers'
// buffers on its own stream, and a second barrier keeps the send buffers alive until
// every peer has read them. Plain C++ header (no CUDA includes).
#pragma once

#include <chrono>
#include <memory>

#include "gpu/collectives.h"

namespace conclave::gpu::cuda {

/// What the ranks of one local group share (made once, handed to each rank).
class local_device_group;

/// A group of `size` ranks whose collectives give up after `timeout` (collective_error).
std::shared_ptr<local_device_group> make_local_device_group(int size,
                                                            std::chrono::milliseconds timeout);

/// Rank `rank` of `group`, its buffers on CUDA device `device`. kind() "local";
/// device_buffers() true. abort() fails every rank's current and later collectives.
std::unique_ptr<communicator> make_local_device_communicator(
    std::shared_ptr<local_device_group> group, int rank, int device);

}  // namespace conclave::gpu::cuda
