// The NCCL communicator (docs/cluster.md §5): GPU ranks, one per device, device buffers on
// the caller's stream. The factory functions are declared CUDA-free in gpu/collectives.h
// (have_nccl, nccl_unique_id, make_nccl_communicator); this header only names where they
// live and what the implementation promises:
//  * NCCL_NVLS_ENABLE=0 is set (unless already set) before the first NCCL call;
//  * the communicator is non-blocking (ncclConfig_t::blocking = 0), so abort() can
//    ncclCommAbort it from another thread while a collective waits;
//  * all_to_all_v is one ncclGroupStart/End of ncclSend/ncclRecv (ncclUint8) per peer with
//    a count > 0; all_gather, all_reduce_sum (float, int64) are NCCL's; barrier is a
//    1-element all-reduce;
//  * every collective returns once it completed on the stream (the host may read results
//    copied after it; a failed or aborted one throws collective_error).
#pragma once

#include "gpu/collectives.h"
