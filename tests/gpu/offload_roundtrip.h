// A backend's KV offload round trip (backend::transfer_kv), shared by the CPU test
// (tests/gpu/batch_test.cpp) and the CUDA one (tests/gpu/cuda_model_test.cpp): a prompt's
// blocks copied to the host pool and back into other device blocks decode exactly as the
// originals; out-of-range ids are refused.
#pragma once

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpu/backend.h"
#include "model/checkpoint.h"
#include "tests/fixture.h"

namespace conclave::test {

inline void check_offload_roundtrip(const std::string& kind,
                                    const std::string& kv_cache_dtype = "auto") {
  const model::checkpoint ckpt(data_dir() / "tiny_moe");
  config::backend_config b;
  b.kind = kind;
  b.kv_cache_dtype = kv_cache_dtype;
  b.block_size = 4;
  b.num_kv_blocks = 32;
  b.kv_offload_bytes = size_t{16} << 20;
  auto be = gpu::make_backend(ckpt, b);
  REQUIRE(be->kv_shape().num_host_blocks > 7);
  const std::vector<int32_t> prompt = {11, 802, 3, 4095, 77, 1200, 9, 5000, 31, 64};
  const std::vector<int32_t> table = {0, 1, 2}, moved = {20, 21, 22};
  gpu::step_output out;
  gpu::step_sequence pre{prompt, 0, table, false};
  be->forward({&pre, 1}, out);
  // Out to host blocks 5, 6, 7, then back into device blocks 20, 21, 22.
  gpu::kv_transfer t;
  for (int i = 0; i < 3; ++i) t.to_host.push_back({table[static_cast<size_t>(i)], 5 + i});
  for (int i = 0; i < 3; ++i) t.to_device.push_back({moved[static_cast<size_t>(i)], 5 + i});
  be->transfer_kv(t);
  const std::vector<int32_t> next = {123};
  gpu::step_sequence a{next, 10, table, false}, c{next, 10, moved, false};
  gpu::step_output oa, oc;
  be->forward({&a, 1}, oa);
  be->forward({&c, 1}, oc);
  REQUIRE(oa.logits.size() == oc.logits.size());
  CHECK(oa.logits == oc.logits);
  // Blocks never written decode differently: the check can fail.
  const std::vector<int32_t> empty = {24, 25, 26};
  gpu::step_sequence d{next, 10, empty, false};
  gpu::step_output od;
  be->forward({&d, 1}, od);
  CHECK(od.logits != oa.logits);
  gpu::kv_transfer bad;
  bad.to_host.push_back({0, be->kv_shape().num_host_blocks});
  CHECK_THROWS_AS(be->transfer_kv(bad), std::invalid_argument);
  bad.to_host = {{32, 0}};
  CHECK_THROWS_AS(be->transfer_kv(bad), std::invalid_argument);
}

}  // namespace conclave::test
