// emu_backend.cpp — orchard::Backend on the CPU emulator (emu/launcher.h).
//
// Knobs (emu_inproc.h, docs/emu.md): mode, workers, stack_kb,
// watchdog_seconds. Each is taken from emu_configure() if set, else from its
// environment variable (read once, at first use), else (mode, workers) from
// BackendOptions, else the default; except that BackendOptions.workers > 0
// wins over ORCHARD_EMU_WORKERS. A ThreadSanitizer build (ORCHARD_EMU_TSAN)
// always uses threads mode. Backends read the knobs at every dispatch, so
// emu_configure applies to existing ones from their next dispatch on.
// Thread-safe and fork-safe: the only lock taken per dispatch here is the
// knobs' lock, which the atfork handlers hold across fork().
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../emu/launcher.h"
#include "backend.h"
#include "device_pick.h"
#include "emu_inproc.h"

namespace orchard {
namespace {

constexpr std::size_t kBufferAlign = 16384;  // like a Metal shared buffer: page aligned
constexpr std::size_t kMaxBytesArg = 4096;   // setBytes limit on Metal

// ---- knobs ----
struct Knob {
  const char* key;
  const char* env;
  unsigned long lo, hi;
  const char* what;  // what the number is, for errors
};
constexpr int kMode = 0, kWorkers = 1, kStack = 2, kWatchdog = 3, kKnobs = 4;
constexpr Knob kKnob[kKnobs] = {
    {"mode", "ORCHARD_EMU_MODE", 0, 0, "fibers or threads"},
    {"workers", "ORCHARD_EMU_WORKERS", 0, 4096, "a whole number of fibers worker threads (0 = all cores)"},
    {"stack_kb", "ORCHARD_EMU_STACK_KB", 64, 1 << 20, "a whole number of KiB (the stack of each emulated thread)"},
    {"watchdog_seconds", "ORCHARD_EMU_WATCHDOG_SECONDS", 1, 86400,
     "a whole number of seconds without progress before a dispatch fails"},
};

struct Config {
  std::mutex mu;
  std::string env[kKnobs];  // the environment at first use
  std::string set[kKnobs];  // emu_configure ("" = not set)
};
void config_lock();
void config_unlock();
// Leaked: nothing to destroy at exit. Its lock is held across fork() so a
// child can always read and set the knobs.
Config& config() {
  static Config* c = [] {
    auto* n = new Config;
    for (int i = 0; i < kKnobs; ++i)
      if (const char* v = std::getenv(kKnob[i].env)) n->env[i] = v;
    pthread_atfork(config_lock, config_unlock, config_unlock);
    return n;
  }();
  return *c;
}
void config_lock() { config().mu.lock(); }
void config_unlock() { config().mu.unlock(); }

// Checks a value of knob i; returns "" or what is wrong with it.
std::string knob_problem(int i, const std::string& v, unsigned long* n) {
  if (i == kMode) return v == "fibers" || v == "threads" ? "" : "want fibers or threads";
  char* end = nullptr;
  errno = 0;
  unsigned long x = v.empty() || v[0] == '-' || v[0] == '+' ? 0 : std::strtoul(v.c_str(), &end, 10);
  if (v.empty() || !end || *end || errno || x < kKnob[i].lo || x > kKnob[i].hi)
    return std::string("want ") + kKnob[i].what + " from " + std::to_string(kKnob[i].lo) + " to " +
           std::to_string(kKnob[i].hi);
  if (n) *n = x;
  return "";
}

int knob_index(const std::string& key) {
  for (int i = 0; i < kKnobs; ++i)
    if (key == kKnob[i].key) return i;
  std::string all;
  for (int i = 0; i < kKnobs; ++i) all += std::string(i ? ", " : "") + kKnob[i].key;
  throw std::invalid_argument("emu_configure: unknown key '" + key + "': want one of " + all);
}

struct Values {
  std::string v[kKnobs];  // configured, else the environment's ("" = neither)
  bool workers_configured = false;
};
Values current() {
  Config& c = config();
  std::lock_guard<std::mutex> g(c.mu);
  Values out;
  for (int i = 0; i < kKnobs; ++i) out.v[i] = !c.set[i].empty() ? c.set[i] : c.env[i];
  out.workers_configured = !c.set[kWorkers].empty();
  return out;
}

// A value from emu_configure was checked there; one from the environment is
// checked here, with the variable's name in the error.
unsigned long number(const Values& vals, int i, unsigned long def) {
  if (vals.v[i].empty()) return def;
  unsigned long n = 0;
  std::string bad = knob_problem(i, vals.v[i], &n);
  if (!bad.empty()) throw std::runtime_error(std::string("emu: ") + kKnob[i].env + "=" + vals.v[i] + ": " + bad);
  return n;
}

orchard_emu::LaunchOptions launch_options(const BackendOptions& opts, const Values& vals) {
  std::string mode = !vals.v[kMode].empty() ? vals.v[kMode] : opts.emu_mode;
  if (mode.empty()) mode = "fibers";
  if (mode != "fibers" && mode != "threads")
    throw std::runtime_error("emu: mode '" + mode + "' is unknown: want fibers or threads (ORCHARD_EMU_MODE)");
#ifdef ORCHARD_EMU_TSAN
  mode = "threads";  // ThreadSanitizer cannot follow fiber switches
#endif
  orchard_emu::LaunchOptions lo;
  lo.threads = mode == "threads";
  if (opts.workers > 0 && !vals.workers_configured) lo.workers = unsigned(opts.workers);
  if (!lo.workers) lo.workers = unsigned(number(vals, kWorkers, 0));
  lo.stack_bytes = number(vals, kStack, 256) << 10;
  // A configured value or the environment's, else the caller's option (the
  // op library's), else 20 s.
  lo.watchdog_seconds = double(number(vals, kWatchdog, 0));
  if (lo.watchdog_seconds <= 0) lo.watchdog_seconds = opts.watchdog_seconds > 0 ? opts.watchdog_seconds : 20;
  return lo;
}

class EmuBackend final : public Backend {
 public:
  explicit EmuBackend(const BackendOptions& opts) : opts_(opts) {
    (void)launch_options(opts_, current());  // bad knobs fail here, before any dispatch
    auto problems = orchard_emu::registry_problems();
    if (!problems.empty()) throw std::runtime_error("emu: " + problems.front());
    if (!opts.device.empty()) {  // --device: the one emulated device must match, as on Metal
      std::string error;
      if (pick_device({DeviceCandidate{device(), 7, false}}, opts.device, &error) < 0)
        throw std::runtime_error("emu: --device: " + error);
    }
  }

  std::string name() const override { return "emu"; }

  std::string device() const override {
    auto l = launcher();
    if (l->threads()) return "cpu (threads)";
    unsigned w = l->workers();
    return "cpu (fibers, " + std::to_string(w) + (w == 1 ? " worker)" : " workers)");
  }

  // The emulation's values: Apple7's limits (enforced), the host's memory.
  DeviceInfo device_info() const override {
    DeviceInfo d;
    d.name = device();
    d.gpu_family = "emu";
    Limits l = limits();
    d.max_threadgroup_memory = l.max_threadgroup_memory;
    d.max_threads_per_threadgroup = l.max_threads_per_threadgroup;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    d.recommended_working_set = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
    d.unified_memory = true;  // one memory: the host's
    d.devices = {d.name};
    return d;
  }

  TimeSource time_source() const override { return TimeSource::kEmu; }

  Limits limits() const override { return Limits{1024, 32768, 32}; }

  void prepare(const std::vector<std::string>& kernels) override {
    for (const std::string& k : kernels)
      if (!orchard_emu::find_kernel(k)) throw std::runtime_error("emu: no kernel named '" + k + "' (" + available() + ")");
  }

  std::vector<std::string> kernels() const override {
    std::vector<std::string> out;
    for (const auto* e : orchard_emu::registry()) out.push_back(e->host_name);
    std::sort(out.begin(), out.end());
    return out;
  }

  // The memory lives in the handle (impl) only: a private buffer has no
  // host pointer, as on Metal, so host code that touches it fails in tests.
  Buffer alloc(size_t bytes, const std::string& label, Storage storage, size_t offset) override {
    if (offset % kCopyAlign)
      throw std::runtime_error("emu: buffer '" + label + "' at offset " + std::to_string(offset) +
                               ": offsets must be multiples of " + std::to_string(kCopyAlign));
    const size_t need = offset + copy_span(std::max<size_t>(bytes, 1));
    size_t n = (need + kBufferAlign - 1) / kBufferAlign * kBufferAlign;
    void* p = std::aligned_alloc(kBufferAlign, n);
    if (!p) throw std::runtime_error("emu: cannot allocate " + std::to_string(bytes) + " bytes for '" + label + "'");
    // Metal's new shared buffers are zeroed too; private contents are undefined there.
    std::memset(p, storage == Storage::kShared ? 0 : 0xFF, n);
    Buffer b;
    b.bytes = bytes;
    b.offset = offset;
    b.storage = storage;
    b.label = label;
    b.impl = std::make_shared<Allocation>(p, n);
    if (storage == Storage::kShared) b.host = static_cast<char*>(p) + offset;
    return b;
  }

  Buffer wrap_host(void* p, size_t bytes, const std::string& label) override {
    if (!p && bytes) throw std::runtime_error("emu: buffer '" + label + "': null host memory");
    Buffer b;
    b.bytes = bytes;
    b.label = label;
    b.impl = std::make_shared<Allocation>(p, copy_span(bytes), false);
    b.host = p;
    return b;
  }

  void copy(const Buffer& src, size_t src_off, const Buffer& dst, size_t dst_off, size_t bytes) override {
    check_copy(src, src_off, dst, dst_off, bytes);
    std::memmove(at(dst, "copy to") + dst_off, at(src, "copy from") + src_off, bytes);
  }

  double dispatch(const std::string& kernel, Dim3 groups, Dim3 tpg, const std::vector<Arg>& args) override {
    const orchard_emu::KernelEntry* k = orchard_emu::find_kernel(kernel);
    if (!k) throw std::runtime_error("emu: no kernel named '" + kernel + "' (" + available() + ")");
    const std::string who = "kernel '" + kernel + "'";
    const metal::uint3 g3(groups.x, groups.y, groups.z), t3(tpg.x, tpg.y, tpg.z);
    orchard_emu::Launcher::check_shape(*k, g3, t3);
    orchard_emu::Launch l;
    l.kernel = k;
    std::vector<std::unique_ptr<std::max_align_t[]>> bytes;  // copies of setBytes-style args
    for (const Arg& a : args) {
      if (a.index < 0 || a.index >= orchard_emu::kMaxBuffers)
        throw std::runtime_error(who + ": buffer index " + std::to_string(a.index) + " is outside 0.." +
                                 std::to_string(orchard_emu::kMaxBuffers - 1));
      if (l.buf[a.index]) throw std::runtime_error(who + ": buffer index " + std::to_string(a.index) + " bound twice");
      if (a.kind == Arg::kBuffer) {
        if (!a.buffer || !a.buffer->impl)
          throw std::runtime_error(who + ": buffer index " + std::to_string(a.index) + " is bound to no buffer");
        l.buf[a.index] = at(*a.buffer, who.c_str());  // the kernel sees the buffer at its offset
        l.len[a.index] = a.buffer->bytes;
      } else {
        // Apple: setBytes:length:atIndex: is "for single-use data smaller than 4 KB";
        // the validation layer rejects a zero length.
        if (a.length == 0 || a.length >= kMaxBytesArg)
          throw std::runtime_error(who + ": setBytes of " + std::to_string(a.length) + " bytes at index " +
                                   std::to_string(a.index) + ": Metal's setBytes:length:atIndex: takes 1 to 4095 " +
                                   "bytes (data smaller than 4 KB); put larger data in a buffer");
        std::size_t words = (std::max<size_t>(a.length, 1) + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
        bytes.emplace_back(new std::max_align_t[words]());
        if (a.length) std::memcpy(bytes.back().get(), a.bytes, a.length);
        l.buf[a.index] = bytes.back().get();
        l.len[a.index] = a.length;
      }
    }
    for (int i = 0; i < k->nparams; ++i) {
      const auto& p = k->params[i];
      if (p.kind != orchard_emu::ParamInfo::kBuiltin && !l.buf[p.index])
        throw std::runtime_error(who + ": [[buffer(" + std::to_string(p.index) + ")]] '" + p.name + "' (" + p.type +
                                 ") is not bound");
    }
    launcher()->warm(g3, t3);  // pool and fiber stacks set up outside the reported time
    const auto t0 = std::chrono::steady_clock::now();  // the emulation's own time
    launcher()->dispatch(*k, g3, t3, l);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  // One allocation (a Buffer's impl): owned, or the caller's (wrap_host).
  struct Allocation {
    Allocation(void* p, size_t n, bool own = true) : base(p), size(n), owned(own) {}
    ~Allocation() {
      if (owned) std::free(base);
    }
    Allocation(const Allocation&) = delete;
    Allocation& operator=(const Allocation&) = delete;
    void* base;
    size_t size;
    bool owned;
  };

  // The device address of b's bytes (its allocation + offset).
  static char* at(const Buffer& b, const char* what) {
    auto* a = static_cast<Allocation*>(b.impl.get());
    if (!a || b.offset + copy_span(b.bytes) > a->size)
      throw std::runtime_error(std::string("emu: ") + what + " buffer '" + b.label +
                               "': not a buffer this backend allocated");
    return static_cast<char*>(a->base) + b.offset;
  }

  std::string available() const {
    auto names = kernels();
    if (names.empty()) return "this runner was built without kernels";
    std::string s = "available: ";
    for (size_t i = 0; i < names.size() && i < 12; ++i) s += (i ? ", " : "") + names[i];
    if (names.size() > 12) s += ", ... (" + std::to_string(names.size()) + " in all)";
    return s;
  }

  // The launcher for the knobs in effect now (cheap: launchers hold no
  // threads, the pools are process-wide, launcher.h). Made per call rather
  // than cached under a lock of this backend: fork() in another thread could
  // leave such a lock held in the child (the knobs' lock is fork-safe).
  std::unique_ptr<const orchard_emu::Launcher> launcher() const {
    return std::make_unique<const orchard_emu::Launcher>(launch_options(opts_, current()));
  }

  BackendOptions opts_;
};

}  // namespace

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) { return std::make_unique<EmuBackend>(opts); }

void emu_configure(const std::string& key, const std::string& value) {
  int i = knob_index(key);
  if (!value.empty()) {
    std::string bad = knob_problem(i, value, nullptr);
    if (!bad.empty()) throw std::invalid_argument("emu_configure: " + key + "='" + value + "': " + bad);
  }
  Config& c = config();
  std::lock_guard<std::mutex> g(c.mu);
  c.set[i] = value;
}

std::string emu_config(const std::string& key) {
  int i = knob_index(key);
  orchard_emu::LaunchOptions lo = launch_options(BackendOptions{}, current());
  switch (i) {
    case kMode: return lo.threads ? "threads" : "fibers";
    case kWorkers: return std::to_string(lo.workers);
    case kStack: return std::to_string(lo.stack_bytes >> 10);
    default: return std::to_string(static_cast<unsigned long>(lo.watchdog_seconds));
  }
}

void emu_register_fork_handlers() {
  (void)config();
  orchard_emu::register_fork_handlers();
}

std::vector<std::string> emu_config_keys() {
  std::vector<std::string> out;
  for (const Knob& k : kKnob) out.push_back(k.key);
  return out;
}

}  // namespace orchard
