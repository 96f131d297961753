// attn_state.h — the op library's process-wide state (runtime side, C++20),
// shared by attn_api.cpp (CPU/emu) and attn_api_metal.mm (MPS). Private to
// torch/: the torch code sees only include/orchard/attn_api.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "attn_run.h"
#include "backend.h"
#include "orchard/attn_api.h"
#include "runlog.h"
#include "select.h"

namespace orchard {
namespace api {

// attn_api.h's settings (the table there).
struct Settings {
  std::string mode = "fibers";
  int workers = 0;
  double watchdog = 0;     // 0: the backend's default (20 s)
  std::string kernel_log;  // "": default_log_path(backend)
  bool debug = false;
  uint64_t group_cap = 0;  // $ORCHARD_DISPATCH_GROUPS (testing the split, as the runner)
};

struct State {
  std::mutex mu;  // held for every call, configure and fork
  bool loaded = false;
  Settings set;
  std::unique_ptr<Backend> emu;
  std::unique_ptr<RunLog> emu_log, metal_log;
};

// The one State (made on first use, never destroyed).
State& state();
// Reads the environment into st.set once (st.mu held).
void load_settings(State& st);
// The emu backend / the log of backend "emu" or "metal", made on first use (st.mu held).
Backend& emu_backend(State& st);
RunLog& run_log(State& st, const std::string& backend);
// <cache dir>/orchard/<backend>/logs/flashattn_kernel_calls.log, as orchard's
// default build dir <user cache dir>/orchard/<backend> has it ("" without $HOME).
std::string default_log_path(const std::string& backend);
// The shape for p and its selection; throws std::invalid_argument when unsupported.
AttnShape checked_shape(const Problem& p, Selection* sel);
// Runs body; a failure other than the log's own is logged as an ERROR line, then rethrown.
void run_logged(RunLog& log, AttnSession& ses, const std::function<void()>& body);

}  // namespace api
}  // namespace orchard
