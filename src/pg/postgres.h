// The PostgreSQL 15 lifecycle on an attached volume: binaries, the filesystem, initdb, pg_ctl.
//
// Everything here runs external programs (mkfs.ext4, mount, umount, initdb, pg_ctl, psql) and
// returns a Status whose message is one line naming what failed and why (the program's last
// stderr line). Postgres programs run as the `postgres` user (runuser), from "/" so a caller's
// working directory under a 0700 home never matters.
//
// Layout of one server (NAME), with H a short hash of the store directory so stores never clash:
//   /run/arbor/H/NAME           mount point of the volume's ext4 (root 0755)
//   /run/arbor/H/NAME/pgdata    the data directory (postgres 0700)
//   /run/arbor/H/NAME/postgres.log   the server log (postgres)
//   /run/arbor/H/sock           unix socket directory for every server of the store (postgres)
// Mount points live under /run, which every user can traverse, never under the store (which may
// sit in root's 0700 home): the postgres user must reach its data directory wherever the store is.
//
// Threading: none of these functions keeps state; callers serialize per server (pg_commands.cc
// holds a lock file).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "util/status.h"

namespace arbor::pg {

// Where the PostgreSQL 15 programs are: $ARBOR_PG_BINDIR, else /usr/lib/postgresql/15/bin.
// Fails (kNotFound) with a one-line hint when postgres, initdb or pg_ctl is missing, or when
// there is no `postgres` user.
Result<std::string> find_bindir();

// Fails unless we run as root (mount and loop devices need it).
Status require_root();

struct Paths {
  std::string base;        // /run/arbor/H
  std::string mount_dir;   // base/NAME
  std::string data_dir;    // mount_dir/pgdata
  std::string log_file;    // mount_dir/postgres.log
  std::string socket_dir;  // base/sock
};
Paths paths_for(const std::string& store_dir, const std::string& name);

// True when nothing listens on 127.0.0.1:port (we can bind it) nor on that port's unix socket in
// `socket_dir` (a socket file nobody listens on is stale, not in use).
bool port_free(int port, const std::string& socket_dir);
// The first free port from 5433 up, skipping `taken` (ports recorded for other servers).
Result<int> pick_port(const std::vector<int>& taken, const std::string& socket_dir);

// mkfs.ext4 on a fresh (all-zero, thin) device: no discard, nothing zeroed.
Status make_filesystem(const std::string& device);
// Mounts `device` (ext4) on `mount_dir`, creating the directory. No-op when already mounted there.
Status mount_device(const std::string& device, const std::string& mount_dir);
// Unmounts `mount_dir` when mounted there. A loop device left orphaned under it (its FUSE disk
// died with a killed arbord) is detached too.
Status unmount(const std::string& mount_dir);
bool is_mounted(const std::string& mount_dir);
// The device mounted on `mount_dir`, "" when none.
std::string mounted_device(const std::string& mount_dir);
// True when the file system mounted on `mount_dir` went read-only after a write error: ext4 aborts
// its journal (mount option `emergency_ro`, Linux 6.x) or remounts read-only (errors=remount-ro)
// when a write of its own fails, as on a store that refused the write for lack of space.
bool filesystem_failed(const std::string& mount_dir);
// `e2fsck -p` (preen: replay the journal, fix what is safe to fix) of an unmounted device, after a
// write error made its file system read-only. Fails, naming the command to run by hand, when
// e2fsck leaves errors it would not fix on its own.
Status repair_filesystem(const std::string& device);
// Writes every committed ext4 journal transaction of the file system mounted at `mount_dir` to its
// home location and marks the journal empty (EXT4_IOC_CHECKPOINT). A crash-consistent copy taken
// right after then mounts without replaying the journal. A no-op before Linux 5.13 and without a
// journal.
Status checkpoint_journal(const std::string& mount_dir);

// Creates the socket directory and, on a fresh filesystem, the data directory and log file
// owned by postgres; then initdb (trust auth, UTF8) and our settings (listen on 127.0.0.1).
Status init_cluster(const std::string& bindir, const Paths& p);

// The pid of the postmaster serving `data_dir`, or 0: postmaster.pid names a live process whose
// command line has this data directory (a pid file copied from a parent names the parent's
// postmaster, which serves another directory).
pid_t running_pid(const Paths& p);
// Removes a postmaster.pid that no running server of ours owns (copied by a branch, or left
// by a crash).
Status remove_stale_pid(const Paths& p);

// Why a server stopped on its own: the last PANIC or FATAL line of its log, "" when there is none.
std::string last_failure(const Paths& p);

// Removes what the store's servers share under /run/arbor (the socket directory, then the store's
// directory there) once the last server is deleted: socket files left by servers that died, and
// the directories when empty.
void remove_run_dirs(const Paths& p);

// Empties the server log (a branch's is its parent's, with a crash-consistent tail of zeros).
Status reset_log(const Paths& p);

// pg_ctl start on `port`: returns once the server accepts connections (after WAL replay; a
// standby once it takes read-only ones).
// `settings` are extra `-c name=value` options for this run of the server.
Status start_server(const std::string& bindir, const Paths& p, int port, const std::string& settings = "");
// Starts a server on a branch's crash-consistent image: WAL replay as a standby, then promotion, so
// it accepts writes without waiting for an end-of-recovery checkpoint.
Status start_branch_server(const std::string& bindir, const Paths& p, int port);
// pg_ctl stop -m fast, falling back to immediate. With `immediate`, Postgres's immediate shutdown
// at once (SIGQUIT, then SIGKILL): for a server whose storage is gone, which can write nothing.
// No-op when not running.
Status stop_server(const std::string& bindir, const Paths& p, bool immediate = false);

// Runs SQL through psql as postgres on `port`; returns its stdout (tuples only, unaligned).
Result<std::string> run_sql(const std::string& bindir, int port, const std::string& sql);

// Bytes of WAL that a crash-consistent copy of the server taken now would replay: from the redo
// point of its last completed checkpoint to its current insert position.
Result<uint64_t> redo_distance(const std::string& bindir, int port);

}  // namespace arbor::pg
