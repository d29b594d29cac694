// Helpers shared by tests: reading the HF reference fixtures (reference.json) and
// temporary folders.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace conclave::test {

struct reference_case {
  std::vector<int32_t> input_ids;
  std::vector<double> last_logits;
  std::vector<std::vector<int32_t>> top5;
  std::vector<double> logsumexp;
  std::vector<int32_t> greedy;
};

/// Parses DIR/FILE as written by tools/hf_reference.py or tools/make_fixtures.py.
std::vector<reference_case> load_reference(const std::filesystem::path& dir,
                                           const std::string& file = "reference.json");

/// transformers' own bf16 run on a fixture against its fp32 reference
/// (DIR/reference_bf16.json, tools/make_fixtures.py --bf16): the yardstick of a bf16 run.
struct bf16_yardstick {
  size_t top1_same = 0, positions = 0;
  std::vector<double> last_rel_err;  ///< per case: max |logit - ref| / max |ref|
};
bf16_yardstick load_bf16_yardstick(const std::filesystem::path& dir);

/// The whole file as bytes (empty when it cannot be read).
std::string read_text(const std::filesystem::path& p);

inline std::filesystem::path data_dir() {
  return CONCLAVE_TEST_DATA;
}

/// A fresh empty folder under the system temp dir, removed on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace conclave::test
