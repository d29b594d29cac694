// [cluster] in the server's TOML: keys, defaults, round trip through to_toml, validation.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "config/server_config.h"

using namespace conclave;

namespace {

struct toml_dir {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("conclave_cluster_config_" + std::to_string(::getpid()));
  toml_dir() { std::filesystem::create_directories(dir); }
  ~toml_dir() { std::filesystem::remove_all(dir); }
  std::filesystem::path write(const std::string& text) const {
    const auto path = dir / "c.toml";
    std::ofstream(path) << text;
    return path;
  }
  std::string error_of(const std::string& text) const {
    try {
      config::load_server_config(write(text));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return {};
  }
};

}  // namespace

TEST_CASE("cluster config: off by default, with the documented defaults", "[config][cluster]") {
  const config::server_config c;
  CHECK(!c.cluster.enabled);
  CHECK(c.cluster.host == "0.0.0.0");
  CHECK(c.cluster.ranks_per_replica == 0);
  CHECK(c.cluster.min_ranks == 1);
  CHECK(c.cluster.node_timeout_s == 5.0);
  CHECK(c.cluster.collective_timeout_s == 10.0);
  CHECK(c.cluster.data_iface.empty());
  CHECK(c.cluster.collectives == "auto");
  CHECK(c.cluster.rebalance_interval_s == 60.0);
  CHECK(c.cluster.rebalance_threshold == 1.3);
  CHECK(c.cluster.redundant_experts == 0);
  CHECK(!c.cluster.tls);
  CHECK(c.validate().empty());
}

TEST_CASE("cluster config: TOML keys and round trip", "[config][cluster]") {
  const toml_dir d;
  const auto c = config::load_server_config(d.write(R"([cluster]
enabled = true
host = "10.0.0.1"
port = 9123
token_file = "/etc/conclave/token"
ranks_per_replica = 4
min_ranks = 2
node_timeout_s = 3.0
collective_timeout_s = 20.0
data_iface = "eth1"
collectives = "nccl"
rebalance_interval_s = 0.0
rebalance_threshold = 1.5
redundant_experts = 2
tls = true
certificate = "c.pem"
key = "k.pem"
cafile = "ca.pem"
)"));
  const auto& k = c.cluster;
  CHECK(k.enabled);
  CHECK(k.host == "10.0.0.1");
  CHECK(k.port == 9123);
  CHECK(k.token_file == "/etc/conclave/token");
  CHECK(k.ranks_per_replica == 4);
  CHECK(k.min_ranks == 2);
  CHECK(k.node_timeout_s == 3.0);
  CHECK(k.collective_timeout_s == 20.0);
  CHECK(k.data_iface == "eth1");
  CHECK(k.collectives == "nccl");
  CHECK(k.rebalance_interval_s == 0.0);
  CHECK(k.rebalance_threshold == 1.5);
  CHECK(k.redundant_experts == 2);
  CHECK(k.tls);
  CHECK(k.certificate == "c.pem");
  CHECK(k.key == "k.pem");
  CHECK(k.cafile == "ca.pem");
  const auto again = config::load_server_config(d.write(config::to_toml(c)));
  CHECK(again.cluster.port == 9123);
  CHECK(again.cluster.ranks_per_replica == 4);
  CHECK(again.cluster.data_iface == "eth1");
  CHECK(again.cluster.collectives == "nccl");
  CHECK(again.cluster.cafile == "ca.pem");
  CHECK(again.cluster.tls);
}

TEST_CASE("cluster config: validation names the key", "[config][cluster]") {
  const toml_dir d;
  const auto has = [&](const std::string& text, const std::string& what) {
    const std::string e = d.error_of(text);
    INFO(e);
    return e.find(what) != std::string::npos;
  };
  CHECK(has("[cluster]\nenabled = true\n", "cluster.token_file must be given"));
  CHECK(has("[cluster]\ntls = true\ncertificate = \"c\"\nkey = \"k\"\n",
            "cluster.tls needs certificate, key and cafile"));
  CHECK(has("[cluster]\nranks_per_replica = 65\n", "cluster.ranks_per_replica must be in [0, 64]"));
  CHECK(has("[cluster]\nport = 70000\n", "cluster.port must be in [0, 65535]"));
  CHECK(has("[cluster]\nnode_timeout_s = 0.0\n", "cluster.node_timeout_s must be > 0"));
  CHECK(
      has("[cluster]\ncollective_timeout_s = -1.0\n", "cluster.collective_timeout_s must be > 0"));
  CHECK(has("[cluster]\nmin_ranks = 0\n", "cluster.min_ranks must be >= 1"));
  CHECK(has("[cluster]\ncollectives = \"mpi\"\n",
            "cluster.collectives must be auto, gloo or nccl, not \"mpi\""));
  CHECK(has("[cluster]\nranks_per_replica = 2\nmin_ranks = 3\n",
            "cluster.min_ranks must be <= ranks_per_replica"));
  CHECK(has("[cluster]\nrebalance_threshold = 0.9\n", "cluster.rebalance_threshold must be >= 1"));
  CHECK(has("[cluster]\nhost = \"\"\n", "cluster.host must not be empty"));
  CHECK(has("[cluster]\nport = -1\n", "\"cluster.port\" must be a non-negative integer"));
  CHECK(has("[cluster]\ntoken = \"x\"\n", "unknown key \"cluster.token\""));
  CHECK(has("cluster = 3\n", "[cluster] must be a table"));
  // Valid with tls and all three files; the token file itself is read by the door, not here.
  CHECK(d.error_of("[cluster]\nenabled = true\ntoken_file = \"t\"\ntls = true\ncertificate = "
                   "\"c\"\nkey = \"k\"\ncafile = \"a\"\n")
            .empty());
}

TEST_CASE("engine config: kv_offload_mib reads, defaults to off and round-trips", "[config]") {
  const toml_dir d;
  CHECK(config::load_server_config(d.write("[engine]\n")).engine.backend.kv_offload_bytes == 0);
  const auto c = config::load_server_config(d.write("[engine]\nkv_offload_mib = 3072\n"));
  CHECK(c.engine.backend.kv_offload_bytes == size_t{3072} << 20);
  const auto again = config::load_server_config(d.write(config::to_toml(c)));
  CHECK(again.engine.backend.kv_offload_bytes == size_t{3072} << 20);
}

TEST_CASE("engine config: kv_cache_dtype reads, is checked and round-trips", "[config]") {
  const toml_dir d;
  CHECK(config::load_server_config(d.write("[engine]\n")).engine.backend.kv_cache_dtype == "auto");
  const auto c = config::load_server_config(d.write("[engine]\nkv_cache_dtype = \"fp8\"\n"));
  CHECK(c.engine.backend.kv_cache_dtype == "fp8");
  const auto again = config::load_server_config(d.write(config::to_toml(c)));
  CHECK(again.engine.backend.kv_cache_dtype == "fp8");
  CHECK(d.error_of("[engine]\nkv_cache_dtype = \"int4\"\n")
            .find("kv_cache_dtype must be auto or fp8") != std::string::npos);
}

TEST_CASE("engine config: kv_host_prefix_mib reads, defaults to off and round-trips", "[config]") {
  const toml_dir d;
  CHECK(config::load_server_config(d.write("[engine]\n")).engine.backend.kv_host_prefix_bytes == 0);
  const auto c = config::load_server_config(d.write("[engine]\nkv_host_prefix_mib = 2048\n"));
  CHECK(c.engine.backend.kv_host_prefix_bytes == size_t{2048} << 20);
  const auto again = config::load_server_config(d.write(config::to_toml(c)));
  CHECK(again.engine.backend.kv_host_prefix_bytes == size_t{2048} << 20);
}

TEST_CASE("engine config: prefill_stall_pairs reads, defaults to 8M, is checked and round-trips",
          "[config]") {
  const toml_dir d;
  CHECK(config::load_server_config(d.write("[engine]\n")).engine.scheduler.prefill_stall_pairs ==
        8'000'000);
  CHECK(config::load_server_config(d.write("[engine]\nprefill_stall_pairs = 0\n"))
            .engine.scheduler.prefill_stall_pairs == 0);  // off
  const auto c = config::load_server_config(d.write("[engine]\nprefill_stall_pairs = 1600000\n"));
  CHECK(c.engine.scheduler.prefill_stall_pairs == 1'600'000);
  const auto again = config::load_server_config(d.write(config::to_toml(c)));
  CHECK(again.engine.scheduler.prefill_stall_pairs == 1'600'000);
  CHECK(d.error_of("[engine]\nprefill_stall_pairs = -5\n").find("non-negative") !=
        std::string::npos);
}

TEST_CASE("engine config: decode_slowdown reads, is off by default, is checked and round-trips",
          "[config]") {
  const toml_dir d;
  CHECK(config::load_server_config(d.write("[engine]\n")).engine.scheduler.decode_slowdown == 0);
  const auto c = config::load_server_config(d.write("[engine]\ndecode_slowdown = 1.5\n"));
  CHECK(c.engine.scheduler.decode_slowdown == 1.5);
  CHECK(config::load_server_config(d.write(config::to_toml(c))).engine.scheduler.decode_slowdown ==
        1.5);
  CHECK(config::load_server_config(d.write("[engine]\ndecode_slowdown = 2\n"))
            .engine.scheduler.decode_slowdown == 2);  // an integer reads as a number
  for (const char* bad : {"1.0", "0.5", "-1"}) {
    INFO(bad);
    CHECK(d.error_of(std::string("[engine]\ndecode_slowdown = ") + bad + "\n")
              .find("decode_slowdown must be 0 (off) or greater than 1") != std::string::npos);
  }
  CHECK(d.error_of("[engine]\ndecode_slowdown = \"fast\"\n").find("a number") != std::string::npos);
}

TEST_CASE("[[models]]: keys, overrides per model, round trip and validation", "[config][models]") {
  const toml_dir d;
  const auto c = config::load_server_config(d.write(R"([engine]
backend = "cpu"
kv_cache_mib = 256
[replicas]
count = 2
[[models]]
name = "coder"
aliases = ["qwen3-coder", "default"]
path = "/models/coder"
replicas = 3
kv_cache_mib = 1024
[[models]]
name = "small"
path = "/models/small"
backend = "cuda"
device = 1
)"));
  REQUIRE(c.models.size() == 2);
  CHECK(c.validate().empty());
  CHECK(c.models[0].aliases == std::vector<std::string>{"qwen3-coder", "default"});
  const auto coder = config::model_config(c, c.models[0]);
  CHECK(coder.served_model_name == "coder");
  CHECK(coder.model_dir == "/models/coder");
  CHECK(coder.replicas.count == 3);
  CHECK(coder.engine.backend.kv_cache_bytes == (size_t{1024} << 20));
  CHECK(coder.models.empty());
  const auto small = config::model_config(c, c.models[1]);
  CHECK(small.replicas.count == 2);  // [replicas]
  CHECK(small.engine.backend.kind == "cuda");
  CHECK(small.engine.backend.device == 1);
  CHECK(small.engine.backend.kv_cache_bytes == (size_t{256} << 20));  // [engine]
  // Round trip.
  const auto again = config::load_server_config(d.write(config::to_toml(c)));
  REQUIRE(again.models.size() == 2);
  CHECK(again.models[1].device == 1);
  CHECK(again.models[0].kv_cache_mib == 1024);
  CHECK(again.models[0].aliases == c.models[0].aliases);

  const auto invalid = [&](const std::string& text, const std::string& says) {
    INFO(text);
    CHECK_THAT(d.error_of(text), Catch::Contains(says));
  };
  invalid(
      "[[models]]\nname = \"a\"\npath = \"/m\"\n[[models]]\nname = \"b\"\naliases = "
      "[\"a\"]\npath = \"/n\"\n",
      "models: the name 'a' is used twice");
  invalid("[model]\npath = \"/m\"\n[[models]]\nname = \"a\"\npath = \"/m\"\n",
          "give the model in [model] or in [[models]], not both");
  invalid("[[models]]\nname = \"a b\"\npath = \"/m\"\n", "models[0].name");
  invalid("[[models]]\nname = \"a\"\n", "models[0].path must be given");
  invalid("[[models]]\nname = \"a\"\npath = \"/m\"\nbackend = \"tpu\"\n",
          "models[0].backend must be cpu or cuda");
  CHECK(d.error_of("[[models]]\nname = \"a\"\npath = \"/m\"\nweights = 1\n").find("weights") !=
        std::string::npos);
}

TEST_CASE("[observability], [alerting] and [[alerts]]: keys, defaults, round trip, validation",
          "[config][observability]") {
  const config::server_config d;
  CHECK(d.observability.log_format == "json");
  CHECK(d.observability.sample_interval_s == 1.0);
  // No [[alerts]]: the default rules run, each valid, with distinct names.
  const auto defaults = d.observability.rules();
  REQUIRE(defaults.size() == config::alert_rule_kinds().size());
  for (const auto& r : defaults) CHECK(r.validate().empty());

  toml_dir t;
  const auto c = config::load_server_config(t.write(R"(
[observability]
sample_interval_s = 0.5
history_s = 60
window_s = 30
nvml = false
log_format = "text"
[alerting]
webhooks = ["http://127.0.0.1:9/hook"]
webhook_timeout_s = 2
webhook_max_attempts = 3
webhook_backoff_s = 0.5
webhook_backoff_max_s = 4
[[alerts]]
name = "Down"
rule = "replica_down"
for_s = 5
severity = "critical"
[[alerts]]
name = "SlowStart"
rule = "ttft_p99"
threshold = 2.5
window_s = 120
)"));
  const auto& o = c.observability;
  CHECK(o.sample_interval_s == 0.5);
  CHECK(o.history_s == 60);
  CHECK(o.window_s == 30);
  CHECK_FALSE(o.nvml);
  CHECK(o.log_format == "text");
  CHECK(o.webhooks == std::vector<std::string>{"http://127.0.0.1:9/hook"});
  CHECK(o.webhook_max_attempts == 3);
  CHECK(o.webhook_backoff_max_s == 4);
  REQUIRE(o.rules().size() == 2);  // given rules replace the defaults
  CHECK(o.alerts[0].name == "Down");
  CHECK(o.alerts[0].for_s == 5);
  CHECK(o.alerts[1].threshold == 2.5);
  CHECK(o.alerts[1].severity == "warning");
  CHECK(c.validate().empty());
  // Round trip.
  const auto back = config::load_server_config(t.write(config::to_toml(c)));
  CHECK(back.observability.alerts.size() == 2);
  CHECK(back.observability.alerts[1].window_s == 120);
  CHECK(back.observability.webhooks == o.webhooks);
  CHECK(back.observability.log_format == "text");

  CHECK(t.error_of("[observability]\nsample_interval = 1\n").find("unknown key") !=
        std::string::npos);
  // Loading validates: the error names the file, the entry and the key.
  auto invalid = [&](const std::string& text) { return t.error_of(text); };
  CHECK(invalid("[[alerts]]\nname = \"X\"\nrule = \"latency\"\n").find("must be one of") !=
        std::string::npos);
  CHECK(invalid("[[alerts]]\nname = \"bad name\"\nrule = \"kv_use\"\n").find("letters") !=
        std::string::npos);
  CHECK(invalid("[[alerts]]\nname = \"X\"\nrule = \"kv_use\"\n[[alerts]]\nname = \"X\"\nrule = "
                "\"kv_use\"\n")
            .find("used twice") != std::string::npos);
  CHECK(invalid("[alerting]\nwebhooks = [\"ftp://x\"]\n").find("http://") != std::string::npos);
  CHECK(invalid("[alerting]\nwebhooks = [\"https://x/hook\"]\n").empty());
  CHECK(invalid("[observability]\nlog_format = \"xml\"\n").find("log_format") != std::string::npos);
  CHECK(invalid("[alerting]\ndefault_rules = false\n").empty());
  CHECK(config::load_server_config(t.write("[alerting]\ndefault_rules = false\n"))
            .observability.rules()
            .empty());
}

TEST_CASE("server.admin_keys: read, round-tripped, distinct from the user keys", "[config]") {
  toml_dir t;
  const auto c = config::load_server_config(
      t.write("[server]\napi_keys = [\"user-key-1\"]\nadmin_keys = [\"admin-key-1\"]\n"));
  CHECK(c.admin_keys == std::vector<std::string>{"admin-key-1"});
  CHECK(config::load_server_config(t.write(config::to_toml(c))).admin_keys == c.admin_keys);
  CHECK(t.error_of("[server]\napi_keys = [\"same-key-1\"]\nadmin_keys = [\"same-key-1\"]\n")
            .find("must differ") != std::string::npos);
  CHECK(t.error_of("[server]\nadmin_keys = [\"short\"]\n").find("at least 8") != std::string::npos);
}

TEST_CASE("[[tools.plugins]] and the gateway's journal keys: read, round-tripped, checked",
          "[config]") {
  toml_dir t;
  const auto c = config::load_server_config(t.write(R"([[tools.plugins]]
path = "/opt/tools/libword_count.so"
config = { max_words = 10, names = ["a", "b"] }

[[tools.plugins]]
path = "/opt/tools/libother.so"

[gateway]
resume_window_s = 120
journal_flush_s = 0.5
)"));
  REQUIRE(c.tools.plugins.size() == 2);
  CHECK(c.tools.plugins[0].path == "/opt/tools/libword_count.so");
  CHECK(c.tools.plugins[0].config.find("\"max_words\"") != std::string::npos);
  CHECK(c.tools.plugins[0].config.find("\"names\"") != std::string::npos);
  CHECK(c.tools.plugins[1].config == "{}");
  CHECK(c.gateway.resume_window_s == 120);
  CHECK(c.gateway.journal_flush_s == 0.5);
  const auto back = config::load_server_config(t.write(config::to_toml(c)));
  REQUIRE(back.tools.plugins.size() == 2);
  CHECK(back.tools.plugins[0].config == c.tools.plugins[0].config);
  CHECK(back.gateway.resume_window_s == 120);
  CHECK(t.error_of("[[tools.plugins]]\nconfig = { a = 1 }\n").find("path must not be empty") !=
        std::string::npos);
  CHECK(t.error_of("[[tools.plugins]]\npath = \"x.so\"\nconfig = 3\n").find("a table") !=
        std::string::npos);
  CHECK(t.error_of("[gateway]\njournal_flush_s = 0\n").find("journal_flush_s") !=
        std::string::npos);
}
