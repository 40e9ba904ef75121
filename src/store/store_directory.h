// Opening the embedded default: a store in a directory of segment files.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace arbor {

// Opens (creating when absent) the store whose segments live in `dir`/segments. Takes an exclusive
// lock on `dir`/LOCK so that two daemons never own one store.
Result<std::unique_ptr<Store>> open_store_directory(const std::string& dir, const StoreOptions& options);

}  // namespace arbor
