// gemm_experts (gpu/cuda/moe_experts.h), the experts of steps past the grouped launches'
// size: its light experts through the grouped tensor-core GEMM, its heavy ones through
// one cuBLAS GEMM each, against cuBLAS for all and against the CPU twin. Skips without a GPU.
#include <algorithm>
#include <numeric>
#include <string>

#include "gpu/cpu/ops.h"
#include "gpu/cuda/gemm.h"
#include "gpu/cuda/moe_experts.h"
#include "tests/gpu/cuda_test_util.h"

using namespace conclave;
using namespace conclave::test::cuda;
namespace cu = conclave::gpu::cuda;
namespace cpu = conclave::gpu::cpu;

TEST_CASE("cuda gemm_experts: light experts on the grouped GEMM, heavy on cuBLAS, cpu twin",
          "[cuda][ops]") {
  CONCLAVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const elem t = elem::bf16;
  const size_t h = 64, m = 96, tokens = 300;
  const size_t L = cu::kLightExpertRows;
  // Rows per expert: none, light, heavy, exactly light, one past it (and all light, all heavy).
  for (const std::vector<size_t>& counts :
       {std::vector<size_t>{0, 5, 200, L, L + 1, 40}, std::vector<size_t>{3, 17, 64, 1},
        std::vector<size_t>{L + 7, 300}}) {
    const size_t E = counts.size();
    const size_t rows = std::accumulate(counts.begin(), counts.end(), size_t{0});
    INFO("experts " << E << " rows " << rows);
    std::vector<int32_t> offsets(E + 1, 0), row_token(rows);
    for (size_t e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + static_cast<int32_t>(counts[e]);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(tokens) - 1);
    for (auto& r : row_token) r = pick(rng);
    const auto x = round_as(randn(tokens * h, rng), t);
    const auto wgu = round_as(randn(E * 2 * m * h, rng, 0.1f), t);
    const auto wdn = round_as(randn(E * h * m, rng, 0.1f), t);
    cu::qmatrix gate_up, down;
    gate_up.data = upload_as(wgu, t);
    down.data = upload_as(wdn, t);
    auto dx = upload_as(x, t), doff = device_buffer::from(offsets),
         drt = device_buffer::from(row_token);
    device_buffer gu(rows * 2 * m * 4), act(rows * m * 2), xs(rows * h * 2), dq, dlight(E * 4);
    cu::expert_rows a;
    a.gate_up = &gate_up;
    a.down = &down;
    a.t = t;
    a.x = dx.get();
    a.row_token = drt.as<int32_t>();
    a.offsets = doff.as<int32_t>();
    a.experts = E;
    a.rows = rows;
    a.max_rows = tokens;
    a.h = h;
    a.m = m;
    a.gu = gu.as<float>();
    a.act = act.get();
    cu::blas b;
    std::vector<int32_t> host_off(E + 1), host_light(E);
    const cu::light_experts light{host_light.data(), dlight.as<int32_t>()};
    auto run = [&](const cu::light_experts* l, std::string& path) {
      auto dn = poisoned(rows * h, elem::f32);
      a.dn = dn.as<float>();
      path = cu::gemm_experts(a, b, host_off.data(), xs.get(), dq, nullptr, l);
      return dn.to_vector<float>(rows * h);
    };
    std::string p_all, p_light;
    const auto all_cublas = run(nullptr, p_all);
    const auto mixed = run(&light, p_light);
    CHECK(p_all == "cuBLAS GEMM per expert (host sync)");
    const bool any_light =
        std::any_of(counts.begin(), counts.end(), [&](size_t c) { return c > 0 && c <= L; });
    const bool any_heavy =
        std::any_of(counts.begin(), counts.end(), [&](size_t c) { return c > L; });
    INFO("path " << p_light);
    CHECK((p_light.find("tensor-core") != std::string::npos) == any_light);
    CHECK((p_light.find("cuBLAS") != std::string::npos) == any_heavy);
    // CPU twin: each expert's gathered rows through gate/up, SwiGLU (stored as bf16), down.
    std::vector<float> xg(rows * h), g(rows * 2 * m), s(rows * m), want(rows * h);
    for (size_t r = 0; r < rows; ++r)
      std::copy_n(x.begin() + static_cast<ptrdiff_t>(size_t(row_token[r]) * h), h,
                  xg.begin() + static_cast<ptrdiff_t>(r * h));
    for (size_t e = 0; e < E; ++e)
      if (counts[e] > 0)
        cpu::linear(xg.data() + size_t(offsets[e]) * h, wgu.data() + e * 2 * m * h, nullptr,
                    g.data() + size_t(offsets[e]) * 2 * m, counts[e], 2 * m, h);
    cpu::swiglu(g.data(), s.data(), rows, m);
    s = round_as(s, t);
    for (size_t e = 0; e < E; ++e)
      if (counts[e] > 0)
        cpu::linear(s.data() + size_t(offsets[e]) * m, wdn.data() + e * h * m, nullptr,
                    want.data() + size_t(offsets[e]) * h, counts[e], h, m);
    check_close(all_cublas, want, 2e-2, 2e-2);
    check_close(mixed, want, 2e-2, 2e-2);
    check_close(mixed, all_cublas, 2e-2, 2e-2);
  }
}
