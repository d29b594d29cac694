// The demo model: what `conclave serve` (and `node`, `bench ep`) use without --model. A
// small Qwen3-MoE trained by tools/train_demo.py to answer arithmetic through a `math`
// tool call and to write small Python functions; its weights live in the source tree
// (assets/demo-model, model card in its README.md). The first use copies them, with
// Qwen3's tokenizer, into a folder of the user's (a later build with other weights
// replaces that copy).
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/commands.h"
#include "model/model_error.h"

namespace conclave::app {
namespace {

namespace fs = std::filesystem;

/// The files of assets/demo-model that a served copy needs (the rest is its record).
constexpr const char* demo_files[] = {"model.safetensors", "config.json", "generation_config.json",
                                      "tokenizer_config.json", "training.json"};

/// Where the copy lives: $CONCLAVE_HOME/demo-model, else $XDG_CACHE_HOME/conclave/demo-model,
/// else ~/.cache/conclave/demo-model.
fs::path demo_dir() {
  if (const char* home = std::getenv("CONCLAVE_HOME"); home && *home)
    return fs::path(home) / "demo-model";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return fs::path(xdg) / "conclave" / "demo-model";
  if (const char* home = std::getenv("HOME"); home && *home)
    return fs::path(home) / ".cache" / "conclave" / "demo-model";
  return fs::temp_directory_path() / "conclave-demo-model";
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The copy holds these weights: same training record, same weights size, a tokenizer.
/// (Copies made before the demo was trained have no training.json and are replaced.)
bool is_current(const fs::path& copy, const fs::path& shipped) {
  std::error_code ec;
  const auto size = fs::file_size(copy / "model.safetensors", ec);
  if (ec || size != fs::file_size(shipped / "model.safetensors", ec) || ec) return false;
  if (!fs::exists(copy / "tokenizer.json") || !fs::exists(copy / "training.json")) return false;
  return read_all(copy / "training.json") == read_all(shipped / "training.json");
}

}  // namespace

fs::path ensure_demo_model() {
  const fs::path dir = demo_dir();
  const fs::path shipped = CONCLAVE_DEMO_MODEL_DIR;
  if (!fs::exists(shipped / "model.safetensors")) {
    throw model::model_error(fmt::format(
        "the demo model's weights are missing at {} (a source checkout has them), or pass "
        "--model DIR",
        (shipped / "model.safetensors").string()));
  }
  if (is_current(dir, shipped)) return dir;
  const fs::path tok_dir = CONCLAVE_QWEN3_TOKENIZER_DIR;
  if (!fs::exists(tok_dir / "tokenizer.json")) {
    throw model::model_error(
        fmt::format("the demo model needs Qwen3's tokenizer at {} (run "
                    "scripts/fetch_tokenizer.sh), or pass --model DIR",
                    (tok_dir / "tokenizer.json").string()));
  }
  spdlog::info("copying the demo model into {} (first run only)...", dir.string());
  const fs::path tmp = dir.string() + ".partial";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const char* f : demo_files) fs::copy_file(shipped / f, tmp / f);
  fs::copy_file(tok_dir / "tokenizer.json", tmp / "tokenizer.json");
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  fs::rename(tmp, dir);
  return dir;
}

}  // namespace conclave::app
