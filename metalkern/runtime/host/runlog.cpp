// runlog.cpp — writes the kernel-call and tensor profile logs (see runlog.h
// and docs/logs.md). POSIX only: open(2), fstat(2), write(2), mkdir(2).
#include "runlog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <set>

namespace orchard {
namespace {

constexpr size_t kMaxMsgBytes = 800;    // quoted, at most 4x: the line stays under 4 KiB
constexpr size_t kMaxRunIdBytes = 128;

// Length of the valid UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0
// when it is not valid UTF-8 (overlong forms, surrogates, > U+10FFFF), as Go's
// utf8.ValidString decides.
size_t utf8_len(const std::string& s, size_t i) {
  auto at = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  unsigned c = at(i);
  unsigned lo = 0x80, hi = 0xbf;  // range of the second byte
  size_t n;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((at(i + k) & 0xc0) != 0x80) return 0;
  }
  return n;
}

bool needs_quote(const std::string& v) {
  if (v.empty()) return true;
  for (size_t i = 0; i < v.size();) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c <= ' ' || c == '"' || c == '\\' || c == 0x7f) return true;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = utf8_len(v, i);
    if (n == 0) return true;
    i += n;
  }
  return false;
}

void append_hex(std::string& out, unsigned char c) {
  static const char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

void append_quoted(std::string& out, const std::string& v) {
  out += '"';
  for (size_t i = 0; i < v.size();) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    size_t n = 1;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      append_hex(out, c);
    } else if (c < 0x80) {
      out += char(c);
    } else if ((n = utf8_len(v, i)) > 0) {
      out.append(v, i, n);
    } else {
      n = 1;
      append_hex(out, c);  // a byte that is not part of valid UTF-8
    }
    i += n;
  }
  out += '"';
}

// s cut to at most max bytes, at a UTF-8 character boundary, marked with "…".
std::string cut(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n) + "\xe2\x80\xa6";
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string errno_text(int err) { return std::strerror(err); }

// mkdir -p of path's parent directory, each missing level with mode 0700.
void make_parent(const std::string& path, const std::string& what) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return;
  std::string dir = path.substr(0, slash);
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos < dir.size() && dir[pos] != '/') continue;
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) == 0 || errno == EEXIST) continue;
    int err = errno;
    if (::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;  // e.g. EROFS, EACCES
    throw LogError("cannot create directory " + prefix + " for the " + what + ": " +
                   errno_text(err));
  }
}

// "a named pipe (FIFO)", "a directory", …: what a non-regular file is.
std::string file_kind(mode_t m) {
  if (S_ISFIFO(m)) return "a named pipe (FIFO)";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

// Warns once per directory (on stderr) when the log's directory lets
// another user replace the log: writable by all without the sticky bit, or
// owned by a user other than this one (or root). The log is still written.
void warn_unsafe_dir(const std::string& path) {
  static std::set<std::string> warned;
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || warned.count(dir)) return;
  std::string why, fix;
  if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
    why = "is writable by every user and not sticky";
    fix = "chmod o-w " + dir;
  } else if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    why = "is owned by another user (uid " + std::to_string(st.st_uid) + ")";
    fix = "log to a directory of your own";
  }
  if (why.empty()) return;
  warned.insert(dir);
  std::fprintf(stderr,
               "orchard-runner: warning: log directory %s %s: another user could replace the "
               "logs there (%s)\n",
               dir.c_str(), why.c_str(), fix.c_str());
}

}  // namespace

void append_field(std::string& line, const char* key, const std::string& value) {
  line += ' ';
  line += key;
  line += '=';
  if (needs_quote(value)) {
    append_quoted(line, value);
  } else {
    line += value;
  }
}

std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

std::string log_time_now() {
  using namespace std::chrono;
  int64_t ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  std::time_t secs = std::time_t(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[48];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", int(ms % 1000));
  return buf;
}

bool valid_run_id(const std::string& id) {
  if (id.empty() || id.size() > kMaxRunIdBytes) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// ---- LogFile ----------------------------------------------------------------

LogFile::~LogFile() {
  if (fd_ >= 0) ::close(fd_);
}

void LogFile::open(const std::string& path, const std::string& what) {
  what_ = what;
  make_parent(path, what);
  warn_unsafe_dir(path);
  // O_NONBLOCK: a FIFO planted at the name must not block the open (it is
  // refused below); it changes nothing for a regular file and is cleared.
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
               0600);
  if (fd_ < 0) {
    int err = errno;
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      throw LogError("cannot open the " + what + ": it is a symbolic link, which the runner "
                     "refuses to follow (O_NOFOLLOW); remove the link or choose another path");
    }
    if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      throw LogError("cannot open the " + what + ": it is " + file_kind(st.st_mode) +
                     ", not a regular file; remove it or choose another path");
    }
    throw LogError("cannot open the " + what + ": " + errno_text(err));
  }
  // Checked on the open file, so a name swapped after a check cannot slip by.
  struct stat st;
  std::string refused;
  if (::fstat(fd_, &st) != 0) {
    refused = "cannot stat it: " + errno_text(errno);
  } else if (!S_ISREG(st.st_mode)) {
    refused = "it is " + file_kind(st.st_mode) + ", not a regular file; remove it or choose another path";
  } else if (st.st_nlink > 1) {
    refused = "it has " + std::to_string(st.st_nlink) + " hard links (another name shares the "
              "file), which the runner refuses to append to; remove " + path +
              " or choose another path";
  } else {
    int fl = ::fcntl(fd_, F_GETFL);
    if (fl < 0 || ::fcntl(fd_, F_SETFL, fl & ~O_NONBLOCK) != 0) {
      refused = "cannot set it to blocking writes: " + errno_text(errno);
    }
  }
  if (!refused.empty()) {
    ::close(fd_);
    fd_ = -1;
    throw LogError("cannot open the " + what + ": " + refused);
  }
}

void LogFile::write_line(const std::string& line) {
  if (fd_ < 0) return;
  std::string buf = line + '\n';
  const char* p = buf.data();
  size_t left = buf.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw LogError("cannot write the " + what_ + ": " + errno_text(errno));
    }
    p += n;  // a short write: write the rest (the only case of a second write)
    left -= size_t(n);
  }
}

// ---- RunLog -----------------------------------------------------------------

namespace {

// Opens f when on and path names a file; else warns when on with no path.
void open_if(LogFile& f, bool on, const std::string& path, const char* switch_var, const char* path_var,
             const char* what) {
  if (!on) return;
  if (path.empty()) {
    std::fprintf(stderr, "orchard-runner: warning: %s=1 but %s is not set: not writing the %s\n",
                 switch_var, path_var, what);
    return;
  }
  f.open(path, std::string(what) + " " + path + " (" + path_var + ")");
}

}  // namespace

LogSwitches LogSwitches::from_env() {
  LogSwitches sw;
  sw.calls = env("ORCHARD_DEBUG_FLASH_ATN") == "1";
  sw.calls_path = env("ORCHARD_KERNEL_LOG");
  sw.profile = env("ORCHARD_TENSOR_PROFILE") == "1";
  sw.profile_path = env("ORCHARD_TENSOR_PROFILE_LOG");
  return sw;
}

RunLog::RunLog(const std::string& backend, const std::string& run_id)
    : RunLog(backend, run_id, LogSwitches::from_env()) {}

RunLog::RunLog(const std::string& backend, const std::string& run_id, const LogSwitches& sw)
    : tag_(backend == "metal" ? "flashattn.mm" : "flashattn.emu"),
      backend_(backend),
      run_id_(run_id),
      pid_(long(::getpid())) {
  open_if(calls_, sw.calls, sw.calls_path, "ORCHARD_DEBUG_FLASH_ATN", "ORCHARD_KERNEL_LOG", "kernel-call log");
  open_if(profile_, sw.profile, sw.profile_path, "ORCHARD_TENSOR_PROFILE", "ORCHARD_TENSOR_PROFILE_LOG",
          "tensor profile log");
}

std::string RunLog::run_id_from(const std::string& flag) {
  if (!flag.empty()) return flag;
  std::string id = env("ORCHARD_RUN_ID");
  return id.empty() ? "pid" + std::to_string(long(::getpid())) : id;
}

bool RunLog::any_enabled() {
  return env("ORCHARD_DEBUG_FLASH_ATN") == "1" || env("ORCHARD_TENSOR_PROFILE") == "1";
}

std::string RunLog::head(const char* word, const std::string& lead) const {
  std::string l = "[" + tag_ + "] " + word + lead;
  append_field(l, "time", log_time_now());
  append_field(l, "pid", std::to_string(pid_));
  append_field(l, "run", run_id_);
  append_field(l, "backend", backend_);
  return l;
}

void RunLog::call(bool bwd, const std::string& kernel, const std::vector<int64_t>& shape5,
                  const char* dtype, bool causal, const char* storage, int64_t dur_us,
                  int64_t gpu_us, const char* time_source, const std::string& part) {
  int64_t n = bwd ? ++bwd_calls_ : ++fwd_calls_;
  if (!calls_.is_open()) return;
  std::string call;
  append_field(call, "call", std::to_string(n));
  std::string l = head(bwd ? "BWD" : "FWD", call);
  append_field(l, "kernel", kernel);
  append_field(l, "shape", shape_str(shape5));
  append_field(l, "dtype", dtype);
  append_field(l, "causal", causal ? "1" : "0");
  append_field(l, "storage", storage);
  append_field(l, "dur_us", std::to_string(dur_us));
  append_field(l, "gpu_us", std::to_string(gpu_us));
  append_field(l, "time_source", time_source);
  append_field(l, "part", part);
  calls_.write_line(l);
}

void RunLog::error(const char* op, const std::string& kernel, const std::string& msg) {
  if (!calls_.is_open()) return;
  std::string l = head("ERROR", "");
  if (!kernel.empty()) append_field(l, "kernel", kernel);
  if (op && *op) append_field(l, "op", op);
  append_field(l, "msg", cut(msg, kMaxMsgBytes));
  calls_.write_line(l);
}

void RunLog::alloc(const std::string& name, uint64_t bytes, const char* storage,
                   const std::vector<int64_t>& shape, const char* dtype) {
  if (!profile_.is_open()) return;
  std::string lead;
  append_field(lead, "name", name);
  append_field(lead, "bytes", std::to_string(bytes));
  std::string l = head("ALLOC", lead);
  append_field(l, "shape", shape_str(shape));
  append_field(l, "dtype", dtype);
  append_field(l, "storage", storage);
  profile_.write_line(l);
}

}  // namespace orchard
