// `conclave tokenize`: a JSON array of strings on stdin -> one JSON array of id arrays on
// stdout; with --decode, a JSON array of id arrays -> a JSON array of strings.
#include <spdlog/fmt/fmt.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <stdexcept>

#include "app/commands.h"
#include "model/tokenizer/json_io.h"
#include "model/tokenizer/tokenizer.h"

namespace conclave::app {
namespace {

struct tokenize_args {
  std::string tokenizer_file;
  bool json = false;
  bool decode = false;
  bool no_special = false;
  bool skip_special = false;
};

int run_tokenize(const tokenize_args& a) {
  std::string input{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  const auto tok = tokenizer::tokenizer::from_file(a.tokenizer_file);
  std::string out = "[";
  if (a.decode) {
    const auto lists = tokenizer::parse_json_id_lists(input);
    for (size_t i = 0; i < lists.size(); ++i) {
      for (size_t j = 0; j < lists[i].size(); ++j) {
        if (!tok.contains(lists[i][j])) {
          throw std::invalid_argument(
              fmt::format("input[{}][{}]: {} is not a token id (vocabulary size {})", i, j,
                          lists[i][j], tok.vocab_size()));
        }
      }
      if (i > 0) out += ',';
      tokenizer::append_json_string(out, tok.decode(lists[i], a.skip_special));
    }
  } else {
    const auto texts = tokenizer::parse_json_strings(input);
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int32_t> ids;
      try {
        ids = tok.encode(texts[i], !a.no_special);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("input[{}]: {}", i, e.what()));
      }
      out += i > 0 ? ",[" : "[";
      for (size_t j = 0; j < ids.size(); ++j) {
        if (j > 0) out += ',';
        out += std::to_string(ids[j]);
      }
      out += ']';
    }
  }
  out += "]\n";
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0) {
    throw std::runtime_error("cannot write to stdout");
  }
  return exit_ok;
}

}  // namespace

command add_tokenize(CLI::App& app) {
  auto args = std::make_shared<tokenize_args>();
  auto* cmd = app.add_subcommand(
      "tokenize",
      "encode a JSON array of strings (stdin) to a JSON array of id arrays, or --decode");
  cmd->add_option("--tokenizer", args->tokenizer_file, "the model's tokenizer.json")->required();
  cmd->add_flag("--json", args->json, "JSON in and out (the only format; accepted for clarity)");
  cmd->add_flag("--decode", args->decode,
                "read a JSON array of id arrays and print a JSON array of strings");
  cmd->add_flag("--no-special", args->no_special,
                "encode special-token text (<|im_start|> ...) as plain text");
  cmd->add_flag("--skip-special", args->skip_special,
                "with --decode: leave special tokens out of the text");
  return {cmd, [args] { return run_tokenize(*args); }};
}

}  // namespace conclave::app
