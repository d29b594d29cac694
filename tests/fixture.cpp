// Test helpers.
#include "tests/fixture.h"

#include <simdjson.h>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace conclave::test {

std::vector<reference_case> load_reference(const std::filesystem::path& dir,
                                           const std::string& file) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.load((dir / file).string());
  std::vector<reference_case> out;
  for (simdjson::dom::element c : root["cases"].get_array()) {
    reference_case rc;
    for (int64_t v : c["input_ids"].get_array()) rc.input_ids.push_back(static_cast<int32_t>(v));
    for (double v : c["last_logits"].get_array()) rc.last_logits.push_back(v);
    for (simdjson::dom::element row : c["top5"].get_array()) {
      std::vector<int32_t> r;
      for (int64_t v : row.get_array()) r.push_back(static_cast<int32_t>(v));
      rc.top5.push_back(r);
    }
    for (double v : c["logsumexp"].get_array()) rc.logsumexp.push_back(v);
    for (int64_t v : c["greedy_continuation"].get_array())
      rc.greedy.push_back(static_cast<int32_t>(v));
    out.push_back(std::move(rc));
  }
  return out;
}

bf16_yardstick load_bf16_yardstick(const std::filesystem::path& dir) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.load((dir / "reference_bf16.json").string());
  bf16_yardstick y;
  y.top1_same = static_cast<size_t>(int64_t(root["summary"]["top1_same"]));
  y.positions = static_cast<size_t>(int64_t(root["summary"]["positions"]));
  for (simdjson::dom::element c : root["cases"].get_array())
    y.last_rel_err.push_back(double(c["last_rel_err"]));
  return y;
}

temp_dir::temp_dir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("conclave-test-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace conclave::test
