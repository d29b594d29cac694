// A state store for tests that fails every call (store_error) while `down` is set, over a
// memory store.
#pragma once

#include "store/state_store.h"

namespace conclave::test {

class flaky_store final : public store::state_store {
 public:
  bool down = false;
  std::unique_ptr<store::state_store> inner = store::memory_store();
  /// Journal writes made (failed ones included).
  int journal_writes = 0;

  std::string describe() const override { return "flaky"; }
  void put_key(const store::key_record& r) override { check(), inner->put_key(r); }
  bool delete_key(const std::string& id) override { return check(), inner->delete_key(id); }
  std::vector<store::key_record> keys() override { return check(), inner->keys(); }
  void add_usage(const std::vector<store::usage_row>& rows) override {
    check(), inner->add_usage(rows);
  }
  std::vector<store::usage_row> usage() override { return check(), inner->usage(); }
  void write_journal(const std::vector<store::journal_update>& updates) override {
    ++journal_writes;
    check(), inner->write_journal(updates);
  }
  std::optional<store::journal_entry> journal(const std::string& id) override {
    return check(), inner->journal(id);
  }
  void expire_journal(int64_t now_ms) override { check(), inner->expire_journal(now_ms); }

 private:
  void check() const {
    if (down) throw store::store_error("flaky: down");
  }
};

}  // namespace conclave::test
