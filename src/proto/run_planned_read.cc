#include "proto/run_planned_read.h"

namespace arbor::proto {

void run_planned_read(std::unique_ptr<PlannedRead> plan, const ReadFileFn& read_file,
                      std::function<void(const Status&)> done) {
  struct Pending {
    std::unique_ptr<PlannedRead> plan;
    std::function<void(const Status&)> done;
    size_t left;
    Status error;
  };
  // One count more than the runs, dropped after the loop below: a run completing at once must not
  // finish the plan while the others are still being handed out.
  size_t n = plan->file_reads().size();
  auto pending = std::make_shared<Pending>(Pending{std::move(plan), std::move(done), n + 1, Status::ok()});
  auto one_done = [pending](const Status& s) {
    if (!s.is_ok() && pending->error.is_ok()) pending->error = s;
    if (--pending->left > 0) return;
    Status result = pending->error.is_ok() ? pending->plan->finish() : pending->error;
    pending->plan.reset();
    pending->done(result);
  };
  for (size_t i = 0; i < n; i++) read_file(pending->plan->file_reads()[i], one_done);
  one_done(Status::ok());
}

}  // namespace arbor::proto
