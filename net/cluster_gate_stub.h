// cluster_gate_stub: what stands behind the cluster door until the CAF gate exists.
// TODO(#13, docs/cluster.md §4): the door must splice to the gate that actors/ publishes
// with `middleman().publish(gate, 0, "127.0.0.1")`; this stub only accepts on 127.0.0.1
// and closes every connection, so a node that proved the token learns nothing more yet.
#pragma once

#include <cstdint>
#include <memory>

namespace conclave::net {

class cluster_gate_stub {
 public:
  cluster_gate_stub();
  ~cluster_gate_stub();
  cluster_gate_stub(const cluster_gate_stub&) = delete;
  cluster_gate_stub& operator=(const cluster_gate_stub&) = delete;

  /// Binds 127.0.0.1 (any free port) and starts its thread. Throws std::runtime_error.
  void start();
  uint16_t port() const;
  void stop();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::net
