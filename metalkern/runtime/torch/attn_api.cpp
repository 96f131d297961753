// attn_api.cpp — include/orchard/attn_api.h on the runtime side (C++20, no
// torch): the settings, the process-wide emu backend and log, and the CPU
// entry points, which hand host memory to host/attn_run.h as Buffers.
//
// One mutex serializes every call: one emu pool runs one dispatch at a time
// (correct, if slow, when several Python threads call the op; torch may
// release the GIL). fork(): pthread_atfork takes the mutex around it, so no
// call is under way in the child; the child drops the parent's backend
// without destroying it (its worker threads do not exist there) and makes
// its own at its first call. The state is never destroyed, so no static
// destructor joins worker threads at interpreter exit.
#include "orchard/attn_api.h"

#include <pthread.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "attn_run.h"
#include "attn_state.h"
#include "backend.h"
#include "runlog.h"
#include "select.h"

namespace orchard {
namespace api {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

long parse_long(const std::string& key, const std::string& v, long lo, long hi) {
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < lo || n > hi)
    throw std::invalid_argument(key + "=" + v + ": want a whole number from " + std::to_string(lo) + " to " +
                                std::to_string(hi));
  return n;
}

// Applies one setting; what names where it came from (configure or a variable).
void apply(Settings& s, const std::string& key, const std::string& v, const std::string& what) {
  try {
    if (key == "mode") {
      if (v != "fibers" && v != "threads") throw std::invalid_argument("mode=" + v + ": want fibers or threads");
      s.mode = v;
    } else if (key == "workers") {
      s.workers = int(parse_long(key, v, 0, 4096));
    } else if (key == "watchdog") {
      s.watchdog = double(parse_long(key, v, 1, 86400));
    } else if (key == "kernel_log") {
      s.kernel_log = v;
    } else if (key == "debug") {
      if (v != "0" && v != "1") throw std::invalid_argument("debug=" + v + ": want 0 or 1");
      s.debug = v == "1";
    } else {
      throw std::invalid_argument("unknown setting '" + key +
                                  "': the settings are mode, workers, watchdog, kernel_log, debug");
    }
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(e.what()) + " (" + what + ")");
  }
}

State* g_state = nullptr;

void before_fork() { g_state->mu.lock(); }
void after_fork_parent() { g_state->mu.unlock(); }
void after_fork_child() {
  // The parent's pool threads are gone: leave its backend undestroyed.
  (void)g_state->emu.release();
  g_state->emu_log.reset();  // closes this process's copy of the log's descriptor
  g_state->metal_log.reset();
  g_state->mu.unlock();
}

std::string cache_dir() {
  std::string x = env("XDG_CACHE_HOME");
  if (!x.empty() && x[0] == '/') return x;
  std::string home = env("HOME");
  if (home.empty()) return "";
#ifdef __APPLE__
  return home + "/Library/Caches";
#else
  return home + "/.cache";
#endif
}

AttnShape shape_of(const Problem& p) {
  AttnShape s;
  s.B = p.B;
  s.H = p.H;
  s.Nq = p.Nq;
  s.Nk = p.Nk;
  s.D = p.D;
  s.dtype = p.dtype == DType::kF32 ? orchard::DType::kF32 : orchard::DType::kF16;
  s.causal = p.causal;
  return s;
}

void check_bytes(const char* name, size_t got, size_t want) {
  if (got != want)
    throw std::logic_error(std::string("orchard_ops: tensor ") + name + " has " + std::to_string(got) +
                           " bytes, the shape needs " + std::to_string(want));
}

}  // namespace

State& state() {
  static State* s = [] {
    g_state = new State;  // never destroyed (see the file comment)
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    return g_state;
  }();
  return *s;
}

void load_settings(State& st) {
  if (st.loaded) return;
  Settings s;
  const char* vars[][2] = {{"mode", "ORCHARD_EMU_MODE"},
                           {"workers", "ORCHARD_EMU_WORKERS"},
                           {"watchdog", "ORCHARD_EMU_WATCHDOG_SECONDS"},
                           {"kernel_log", "ORCHARD_KERNEL_LOG"}};
  for (auto& kv : vars) {
    std::string v = env(kv[1]);
    if (!v.empty()) apply(s, kv[0], v, std::string("$") + kv[1]);
  }
  s.debug = env("ORCHARD_DEBUG_FLASH_ATN") == "1";
  if (std::string g = env("ORCHARD_DISPATCH_GROUPS"); !g.empty())
    s.group_cap = uint64_t(parse_long("ORCHARD_DISPATCH_GROUPS", g, 1, 1L << 32));
  st.set = s;
  st.loaded = true;
}

Backend& emu_backend(State& st) {
  if (!st.emu) {
    BackendOptions o;
    o.emu_mode = st.set.mode;
    o.workers = st.set.workers;
    o.watchdog_seconds = st.set.watchdog;
    st.emu = make_backend(o);
  }
  return *st.emu;
}

RunLog& run_log(State& st, const std::string& backend) {
  std::unique_ptr<RunLog>& l = backend == "metal" ? st.metal_log : st.emu_log;
  if (!l) {
    std::string id = RunLog::run_id_from("");
    if (!valid_run_id(id))
      throw std::runtime_error("ORCHARD_RUN_ID=\"" + id +
                               "\" must be 1 to 128 of [A-Za-z0-9._-]: it tags the kernel-call log's lines");
    LogSwitches sw;
    sw.calls = st.set.debug;
    sw.calls_path = st.set.kernel_log.empty() ? default_log_path(backend) : st.set.kernel_log;
    l = std::make_unique<RunLog>(backend, id, sw);
  }
  return *l;
}

std::string default_log_path(const std::string& backend) {
  std::string c = cache_dir();
  return c.empty() ? "" : c + "/orchard/" + backend + "/logs/flashattn_kernel_calls.log";
}

void run_logged(RunLog& log, AttnSession& ses, const std::function<void()>& body) {
  try {
    body();
  } catch (const LogError&) {
    throw;  // the log itself failed: there is nowhere to log that
  } catch (const std::exception& e) {
    try {
      log.error(ses.op(), ses.current_kernel(), e.what());
    } catch (const LogError&) {
    }
    throw;
  }
}

std::string unsupported(const Problem& p) {
  Selection sel = select(shape_of(p));
  return sel.ok ? "" : sel.reason;
}

void configure(const std::string& key, const std::string& value) {
  State& st = state();
  std::lock_guard<std::mutex> lk(st.mu);
  load_settings(st);
  Settings s = st.set;
  apply(s, key, value, "orchard_ops.configure");
  st.set = s;
  st.emu.reset();  // idle (the mutex is held): its workers are joined here
  st.emu_log.reset();
  st.metal_log.reset();
}

std::string settings() {
  State& st = state();
  std::lock_guard<std::mutex> lk(st.mu);
  load_settings(st);
  const Settings& s = st.set;
  return "mode=" + s.mode + "\nworkers=" + std::to_string(s.workers) +
         "\nwatchdog=" + std::to_string(int(s.watchdog > 0 ? s.watchdog : 20)) + "\nkernel_log=" +
         (s.kernel_log.empty() ? default_log_path("emu") : s.kernel_log) + "\ndebug=" + (s.debug ? "1" : "0");
}

std::string kernel_log_path(const std::string& backend) {
  State& st = state();
  std::lock_guard<std::mutex> lk(st.mu);
  load_settings(st);
  return st.set.kernel_log.empty() ? default_log_path(backend) : st.set.kernel_log;
}

AttnShape checked_shape(const Problem& p, Selection* sel) {
  AttnShape shape = shape_of(p);
  *sel = select(shape);
  if (!sel->ok) throw std::invalid_argument(sel->reason);
  return shape;
}

void cpu_forward(const Problem& p, const HostFwd& t) {
  State& st = state();
  std::lock_guard<std::mutex> lk(st.mu);
  load_settings(st);
  Selection sel;
  const AttnShape shape = checked_shape(p, &sel);
  const size_t es = dtype_size(shape.dtype), rows = size_t(p.B) * p.H;
  check_bytes("q", t.q.bytes, rows * p.Nq * p.D * es);
  check_bytes("k", t.k.bytes, rows * p.Nk * p.D * es);
  check_bytes("v", t.v.bytes, rows * p.Nk * p.D * es);
  check_bytes("o", t.o.bytes, rows * p.Nq * p.D * es);
  check_bytes("lse", t.lse.bytes, rows * p.Nq * 4);
  Backend& be = emu_backend(st);
  RunLog& log = run_log(st, be.name());
  AttnSession ses(be, log, shape, sel, attn_params(shape, p.scale), Storage::kShared, 0);
  ses.set_poison(false);
  ses.set_group_cap(st.set.group_cap);
  run_logged(log, ses, [&] {
    ses.prepare_forward();
    Buffer q = be.wrap_host(t.q.data, t.q.bytes, "q"), k = be.wrap_host(t.k.data, t.k.bytes, "k"),
           v = be.wrap_host(t.v.data, t.v.bytes, "v"), o = be.wrap_host(t.o.data, t.o.bytes, "o"),
           lse = be.wrap_host(t.lse.data, t.lse.bytes, "lse");
    ses.forward({q, k, v, o, lse});
  });
}

void cpu_backward(const Problem& p, const HostBwd& t) {
  State& st = state();
  std::lock_guard<std::mutex> lk(st.mu);
  load_settings(st);
  Selection sel;
  const AttnShape shape = checked_shape(p, &sel);
  const size_t es = dtype_size(shape.dtype), rows = size_t(p.B) * p.H;
  const size_t qb = rows * p.Nq * p.D * es, kb = rows * p.Nk * p.D * es, rb = rows * p.Nq * 4;
  check_bytes("q", t.q.bytes, qb);
  check_bytes("k", t.k.bytes, kb);
  check_bytes("v", t.v.bytes, kb);
  check_bytes("o", t.o.bytes, qb);
  check_bytes("lse", t.lse.bytes, rb);
  check_bytes("dout", t.dout.bytes, qb);
  check_bytes("delta", t.delta.bytes, rb);
  check_bytes("dq", t.dq.bytes, qb);
  check_bytes("dk", t.dk.bytes, kb);
  check_bytes("dv", t.dv.bytes, kb);
  Backend& be = emu_backend(st);
  RunLog& log = run_log(st, be.name());
  AttnSession ses(be, log, shape, sel, attn_params(shape, p.scale), Storage::kShared, 0);
  ses.set_poison(false);
  ses.set_group_cap(st.set.group_cap);
  run_logged(log, ses, [&] {
    ses.prepare_backward();
    auto w = [&](const HostTensor& h, const char* name) { return be.wrap_host(h.data, h.bytes, name); };
    Buffer q = w(t.q, "q"), k = w(t.k, "k"), v = w(t.v, "v"), o = w(t.o, "o"), lse = w(t.lse, "lse"),
           dout = w(t.dout, "do"), delta = w(t.delta, "delta"), dq = w(t.dq, "dq"), dk = w(t.dk, "dk"),
           dv = w(t.dv, "dv");
    ses.backward({q, k, v, o, lse, dout, delta, dq, dk, dv});
  });
}

}  // namespace api
}  // namespace orchard
