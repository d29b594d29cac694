// The SQLite state store: one file in WAL mode (readers never block the writer), a busy
// timeout for a file another process holds, and every write in a transaction.
#pragma once

#include <memory>
#include <string>

#include "store/state_store.h"

namespace conclave::store {

/// Opens (creating when missing, with its folder) the store at `path`. Throws store_error
/// naming the file for one that is not a database, is corrupt, or stays locked.
std::unique_ptr<state_store> open_sqlite_store(const std::string& path);

}  // namespace conclave::store
