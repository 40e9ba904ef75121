// How a frontend completes a planned read (io/planned_read.h) on its event loop: every file run
// read through `read_file` (the loop's io_uring), then the plan finished and released, then `done`.
// Shared by the NBD and NVMe/TCP sessions.
#pragma once

#include <functional>
#include <memory>

#include "io/planned_read.h"

namespace arbor::proto {

using ReadFileFn = std::function<void(const FileRead& f, std::function<void(const Status&)> done)>;

// `done` gets the first failed run's error, else finish()'s status. The plan (and the segment pin
// it holds) is released before `done` runs. If read_file drops a completion (its connection
// closed), `done` is never called and the plan is released when the last completion is dropped.
// `done` may run before this returns, if every run completes at once.
void run_planned_read(std::unique_ptr<PlannedRead> plan, const ReadFileFn& read_file,
                      std::function<void(const Status&)> done);

}  // namespace arbor::proto
