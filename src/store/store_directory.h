// Opening the embedded default: a store in a directory of segment files.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace arbor {

// Opens (creating when absent) the store whose segments live in `dir`/segments. Takes an exclusive
// lock on `dir`/LOCK so that two daemons never own one store.
Result<std::unique_ptr<Store>> open_store_directory(const std::string& dir, const StoreOptions& options);

// Opens (labelling and formatting when it holds no store) the store on a block device or a
// preallocated file; `dir` still holds the LOCK (and the daemon's sockets and log).
Result<std::unique_ptr<Store>> open_store_device(const std::string& dir, const std::string& device,
                                                 const StoreOptions& options);

}  // namespace arbor
