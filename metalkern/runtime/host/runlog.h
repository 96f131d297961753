// runlog.h — the runner's two logs: the kernel-call log (FWD/BWD/ERROR
// lines) and the tensor profile log (ALLOC lines), in the grammar of
// docs/logs.md (logs.Parse in Go is the authority).
//
// Switches, read once when a RunLog is made:
//   ORCHARD_DEBUG_FLASH_ATN=1  kernel-call log at $ORCHARD_KERNEL_LOG
//   ORCHARD_TENSOR_PROFILE=1   tensor profile log at $ORCHARD_TENSOR_PROFILE_LOG
//   ORCHARD_RUN_ID             the run id (the --run-id flag wins; else pid<PID>)
// Any other value of a switch leaves its log off (no file is touched). A log
// that is on but has no path is off too, with one warning on stderr: the
// runner does not know orchard's build dir, so it never guesses a path.
//
// Files are opened once, O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW|O_CLOEXEC, mode
// 0600; a missing parent directory is created with mode 0700 (an existing one
// is left alone). A name that is a symbolic link, a hard link (st_nlink > 1
// on the opened file), a FIFO or anything else not a regular file is refused
// (LogError); a directory writable by all without the sticky bit, or owned by
// another user (not root), gets one warning on stderr. Every line is built in memory and written with one write(2),
// so lines of concurrent runners never interleave. A log that cannot be opened
// or written throws LogError: the runner exits 1 rather than run unlogged when
// logging was asked for.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace orchard {

struct LogError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Appends " key=value" to line, quoting the value when the grammar requires it
// (empty, space, tab, '"', '\', control bytes, invalid UTF-8).
void append_field(std::string& line, const char* key, const std::string& value);

// "1x2x64x64x64": dims joined by 'x'.
std::string shape_str(const std::vector<int64_t>& dims);

// The current time as RFC 3339 in UTC with milliseconds: 2026-11-28T10:15:30.123Z.
std::string log_time_now();

// Whether id matches [A-Za-z0-9._-]+ (what run= may hold).
bool valid_run_id(const std::string& id);

// One append-only log file (or none: every method is a no-op when closed).
class LogFile {
 public:
  LogFile() = default;
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;
  ~LogFile();

  // Opens path (creating its parent directory); what names the log, its path
  // and the variable that set it, for messages. Throws LogError.
  void open(const std::string& path, const std::string& what);
  bool is_open() const { return fd_ >= 0; }
  // Writes line + '\n' with one write(2); only a short write (a signal, a full
  // disk) makes a second write of the remainder. Throws LogError.
  void write_line(const std::string& line);

 private:
  int fd_ = -1;
  std::string what_;
};

// Which logs to write, and where (a log that is on with no path is off, with
// one warning on stderr).
struct LogSwitches {
  bool calls = false;  // the kernel-call log
  std::string calls_path;
  bool profile = false;  // the tensor profile log
  std::string profile_path;
  // What the environment says (the switches and paths of the header comment).
  static LogSwitches from_env();
};

// Both logs of one runner process, and the fields every line starts with.
class RunLog {
 public:
  // backend: "emu" or "metal" (the tag is [flashattn.emu] or [flashattn.mm]).
  // run_id: already resolved with run_id_from(). Opens the logs the
  // environment switches on; throws LogError when one cannot be opened.
  RunLog(const std::string& backend, const std::string& run_id);
  // The same with the switches given (the op library: orchard_ops.configure).
  RunLog(const std::string& backend, const std::string& run_id, const LogSwitches& sw);

  // The run id to use: flag when not empty, else $ORCHARD_RUN_ID, else pid<PID>.
  static std::string run_id_from(const std::string& flag);
  // Whether either log is switched on in the environment.
  static bool any_enabled();

  // One FWD (bwd=false) or BWD line for one finished dispatch. call= counts
  // this process's lines of that word from 1. dur_us is wall time, gpu_us the
  // device time from time_source ("gpu" or "emu"); part is "i/n" of the pass.
  void call(bool bwd, const std::string& kernel, const std::vector<int64_t>& shape5,
            const char* dtype, bool causal, const char* storage, int64_t dur_us,
            int64_t gpu_us, const char* time_source, const std::string& part);
  // One ERROR line; op is "fwd", "bwd" or "" (none), kernel may be empty.
  // The message is cut to keep the line under 4 KiB.
  void error(const char* op, const std::string& kernel, const std::string& msg);
  // One ALLOC line in the tensor profile log.
  void alloc(const std::string& name, uint64_t bytes, const char* storage,
             const std::vector<int64_t>& shape, const char* dtype);

 private:
  // "[tag] WORD" + lead (the fields that name the record: call=, or name= and
  // bytes=) + the fields every line has, in docs/logs.md's key order.
  std::string head(const char* word, const std::string& lead) const;

  std::string tag_, backend_, run_id_;
  long pid_ = 0;
  int64_t fwd_calls_ = 0, bwd_calls_ = 0;
  LogFile calls_, profile_;
};

}  // namespace orchard
