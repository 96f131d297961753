// runner.cpp — the orchard attention runner (one executable per backend).
//
//   orchard-runner [common flags] info
//   orchard-runner [common flags] run --q Q.npy --k K.npy --v V.npy [--do DO.npy] [--causal]
//                                     [--scale S] [--storage shared|private]
//                                     [--buffer-offset BYTES] [--baseline plain] --out DIR
//   common flags: [--mode fibers|threads] [--workers N] [--library PATH] [--run-id ID]
//
// The contract (files, JSON, exit codes) is documented in docs/runtime.md.
// Exit codes: 0 ok, 1 kernel/runtime failure, 2 bad input or usage. Errors go
// to stderr as one line starting with "orchard-runner: ". The hardware (or
// its emulation) is reached only through orchard::Backend. With the log
// switches set (runlog.h, docs/logs.md), `run` appends one FWD or BWD line per
// dispatch, an ERROR line for a failure, and one ALLOC line per buffer.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "attn_run.h"
#include "attn_plain.h"
#include "backend.h"
#include "npy.h"
#include "run_json.h"
#include "orchard/params.h"
#include "runlog.h"
#include "select.h"

namespace orchard {
namespace {

// Bad input or usage: exit 2. Everything else thrown is a runtime failure: exit 1.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char kUsage[] =
    "usage: orchard-runner [common flags] info\n"
    "       orchard-runner [common flags] run --q Q.npy --k K.npy --v V.npy [--do DO.npy]\n"
    "                                         [--causal] [--scale S] [--storage shared|private]\n"
    "                                         [--buffer-offset BYTES] [--baseline plain] --out DIR\n"
    "common flags: --mode fibers|threads (emu), --workers N (emu), --run-id ID (tags log lines),\n"
    "              --library PATH (metal; default: orchard.metallib next to the runner),\n"
    "              --device NAME (a substring of the device name; metal also reads\n"
    "              $ORCHARD_METAL_DEVICE)\n"
    "Writes DIR/o.npy, DIR/lse.npy (natural log, float32) and with --do dq.npy, dk.npy,\n"
    "dv.npy; prints one JSON line. Exit 0 ok, 1 kernel/runtime failure, 2 bad input.\n"
    "--storage: where the tensors live (default shared; private: GPU-only, reached through\n"
    "a shared staging buffer and a blit). --buffer-offset: a test/diagnostic knob that\n"
    "binds every tensor that many bytes (a multiple of 4) into its allocation.\n"
    "--baseline plain: run plain attention (S in device memory; kernels/attn_plain.metal)\n"
    "instead of the flash kernels, same files and JSON (plus \"baseline\":\"plain\").\n"
    "Logs: ORCHARD_DEBUG_FLASH_ATN=1 appends to $ORCHARD_KERNEL_LOG, ORCHARD_TENSOR_PROFILE=1\n"
    "to $ORCHARD_TENSOR_PROFILE_LOG; run id from --run-id, else $ORCHARD_RUN_ID.\n"
    "ORCHARD_DISPATCH_GROUPS=N caps the threadgroups of one dispatch (testing the split).\n";

const char kSeeHelp[] = "; see orchard-runner --help";

struct Args {
  std::string cmd;
  std::map<std::string, std::string> flags;  // "--q" -> value; "--causal" -> ""
};

// Flags may come before or after the command (the Go side prepends fixed flags such
// as --library to every command line).
Args parse_args(int argc, char** argv) {
  static const std::map<std::string, bool> kTakesValue = {
      {"--q", true},       {"--k", true},       {"--v", true},      {"--do", true},
      {"--causal", false}, {"--scale", true},   {"--out", true},    {"--mode", true},
      {"--workers", true}, {"--library", true}, {"--run-id", true}, {"--device", true},
      {"--storage", true}, {"--buffer-offset", true}, {"--baseline", true}};
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f.rfind("--", 0) != 0) {
      if (!a.cmd.empty()) {
        throw UsageError("unexpected argument \"" + f + "\"" + kSeeHelp);
      }
      if (f != "info" && f != "run") {
        throw UsageError("unknown command \"" + f + "\" (want info or run)" + kSeeHelp);
      }
      a.cmd = f;
      continue;
    }
    std::string val;
    size_t eq = f.find('=');
    bool inline_val = eq != std::string::npos;
    if (inline_val) {
      val = f.substr(eq + 1);
      f = f.substr(0, eq);
    }
    auto it = kTakesValue.find(f);
    if (it == kTakesValue.end()) throw UsageError("unknown flag \"" + f + "\"" + kSeeHelp);
    if (it->second && !inline_val) {
      if (i + 1 >= argc) throw UsageError("flag " + f + " needs a value");
      val = argv[++i];
    } else if (!it->second && inline_val) {
      throw UsageError("flag " + f + " takes no value");
    }
    if (a.flags.count(f)) throw UsageError("flag " + f + " given twice");
    a.flags[f] = val;
  }
  if (a.cmd.empty()) throw UsageError(std::string("missing command (info or run)") + kSeeHelp);
  return a;
}

std::string flag(const Args& a, const std::string& name) {
  auto it = a.flags.find(name);
  return it == a.flags.end() ? "" : it->second;
}

BackendOptions backend_options(const Args& a) {
  BackendOptions o;
  o.emu_mode = flag(a, "--mode");
  if (!o.emu_mode.empty() && o.emu_mode != "fibers" && o.emu_mode != "threads") {
    throw UsageError("--mode must be fibers or threads, got \"" + o.emu_mode + "\"");
  }
  std::string w = flag(a, "--workers");
  if (!w.empty()) {
    char* end = nullptr;
    long n = std::strtol(w.c_str(), &end, 10);
    if (*end != '\0' || n < 1 || n > 4096) {
      throw UsageError("--workers must be an integer in 1..4096, got \"" + w + "\"");
    }
    o.workers = int(n);
  }
  o.library = flag(a, "--library");
  o.device = flag(a, "--device");
  if (a.flags.count("--device") && o.device.empty()) throw UsageError("--device needs a device name");
  return o;
}



// The "device_info" member of info's JSON (docs/runtime.md).
std::string device_json(const DeviceInfo& d) {
  char nums[256];
  std::snprintf(nums, sizeof nums,
                "\"max_threadgroup_memory\":%llu,\"max_threads_per_threadgroup\":%llu,"
                "\"recommended_working_set\":%llu,\"unified_memory\":%s,\"paravirtual\":%s",
                (unsigned long long)d.max_threadgroup_memory,
                (unsigned long long)d.max_threads_per_threadgroup,
                (unsigned long long)d.recommended_working_set, d.unified_memory ? "true" : "false",
                d.paravirtual ? "true" : "false");
  return "\"device_info\":{\"name\":" + json_str(d.name) + ",\"gpu_family\":" +
         json_str(d.gpu_family) + ",\"metal_family\":" + json_str(d.metal_family) + "," + nums +
         ",\"problem\":" + json_str(d.problem) + ",\"devices\":" + json_list(d.devices) + "}";
}

int cmd_info(const Args& a) {
  for (const auto& kv : a.flags) {
    if (kv.first != "--mode" && kv.first != "--workers" && kv.first != "--library" &&
        kv.first != "--run-id" && kv.first != "--device") {
      throw UsageError("flag " + kv.first + " is not valid for info");
    }
  }
  std::unique_ptr<Backend> be = make_backend(backend_options(a));
  Limits lim = be->limits();
  std::vector<std::string> have = be->kernels();
  std::vector<std::string> host = all_kernel_names();  // what run() may dispatch
  for (const std::string& k : plain_kernel_names()) host.push_back(k);  // --baseline plain
  std::vector<std::string> missing;
  for (const std::string& k : host) {
    bool found = false;
    for (const std::string& h : have) found = found || h == k;
    if (!found) missing.push_back(k);
  }
  const DeviceInfo d = be->device_info();
  std::printf(
      "{\"backend\":%s,\"device\":%s,\"limits\":{\"max_threads_per_threadgroup\":%u,"
      "\"max_threadgroup_memory\":%u,\"simd_width\":%u},\"kernels\":%s,\"host_kernels\":%s,"
      "\"missing_kernels\":%s,"
      "\"head_dim\":{\"min\":1,\"max\":%d},%s,\"time_source\":%s}\n",
      json_str(be->name()).c_str(), json_str(be->device()).c_str(),
      lim.max_threads_per_threadgroup, lim.max_threadgroup_memory, lim.simd_width,
      json_list(have).c_str(), json_list(host).c_str(), json_list(missing).c_str(), kMaxHeadDim,
      device_json(d).c_str(), json_str(time_source_name(be->time_source())).c_str());
  return 0;
}

// ---- run ----------------------------------------------------------------

struct Input {
  std::string path;
  NpyArray arr;
  int64_t B = 0, H = 0, N = 0, D = 0;
};

Input load_input(const Args& a, const std::string& name, const char* what) {
  Input in;
  in.path = flag(a, name);
  try {
    in.arr = read_npy(in.path);
  } catch (const NpyError& e) {
    throw UsageError(std::string(what) + " (" + name + "): " + e.what());
  }
  const auto& s = in.arr.shape;
  if (s.size() != 4) {
    throw UsageError(in.path + ": " + what + " must be 4-D [B, H, N, D], got shape " +
                     in.arr.shape_string());
  }
  for (int64_t d : s) {
    if (d < 1) throw UsageError(in.path + ": every dimension must be >= 1, got shape " +
                                in.arr.shape_string());
  }
  if (in.arr.count() > size_t(INT32_MAX)) {
    throw UsageError(in.path + ": " + std::to_string(in.arr.count()) +
                     " elements exceed the kernels' 32-bit indexing (max 2147483647)");
  }
  in.B = s[0];
  in.H = s[1];
  in.N = s[2];
  in.D = s[3];
  return in;
}

void check_same(const Input& x, const Input& ref, const char* what, bool same_n) {
  if (x.arr.type != ref.arr.type) {
    auto name = [](NpyType t) { return t == NpyType::kF4 ? "float32" : "float16"; };
    throw UsageError(x.path + ": " + what + " is " + name(x.arr.type) + " but " + ref.path +
                     " is " + name(ref.arr.type) + ": all inputs must share one dtype");
  }
  bool ok = x.B == ref.B && x.H == ref.H && x.D == ref.D && (!same_n || x.N == ref.N);
  if (!ok) {
    throw UsageError(x.path + ": " + what + " has shape " + x.arr.shape_string() +
                     ", incompatible with " + ref.path + " " + ref.arr.shape_string() +
                     (same_n ? " (must be equal)" : " (B, H and D must match)"));
  }
}


// ORCHARD_DISPATCH_GROUPS=N: at most N threadgroups per dispatch (testing the
// split; unset or empty: only the work bound of select.h).
uint64_t dispatch_group_cap() {
  const char* v = std::getenv("ORCHARD_DISPATCH_GROUPS");
  if (!v || !*v) return 0;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v, &end, 10);
  if (*end != '\0' || n < 1 || n > (1ull << 32) || v[0] == '-') {
    throw UsageError(std::string("ORCHARD_DISPATCH_GROUPS=") + v +
                     ": want a number of threadgroups per dispatch from 1 to 4294967296");
  }
  return n;
}

// Writes b to dir/file: straight from a shared buffer, else from a download().
void save(AttnSession& ses, const std::string& dir, const char* file, NpyType type,
          std::vector<int64_t> shape, const Buffer& b) {
  const std::string path = (std::filesystem::path(dir) / file).string();
  if (b.storage == Storage::kShared) {
    write_npy(path, type, shape, b.data(), b.bytes);
    return;
  }
  std::vector<unsigned char> host = ses.download(b);
  write_npy(path, type, shape, host.data(), host.size());
}

// --storage (default shared).
Storage storage_flag(const Args& a) {
  if (!a.flags.count("--storage")) return Storage::kShared;
  const std::string s = flag(a, "--storage");
  if (s == "shared") return Storage::kShared;
  if (s == "private") return Storage::kPrivate;
  throw UsageError("--storage must be shared or private, got \"" + s + "\"");
}

// --buffer-offset (default 0): a multiple of 4 up to 1 MiB.
size_t offset_flag(const Args& a) {
  if (!a.flags.count("--buffer-offset")) return 0;
  const std::string s = flag(a, "--buffer-offset");
  char* end = nullptr;
  long n = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || n < 0 || n > (1L << 20) || n % long(kCopyAlign) != 0) {
    throw UsageError("--buffer-offset must be a multiple of " + std::to_string(kCopyAlign) +
                     " bytes in 0..1048576 (each tensor's elements stay aligned), got \"" + s + "\"");
  }
  return size_t(n);
}

int cmd_run(const Args& a) {
  for (const char* req : {"--q", "--k", "--v", "--out"}) {
    if (flag(a, req).empty()) throw UsageError(std::string("run needs ") + req + kSeeHelp);
  }
  const std::string run_id = RunLog::run_id_from(flag(a, "--run-id"));
  if (RunLog::any_enabled() && !valid_run_id(run_id)) {
    throw UsageError("run id \"" + run_id + "\" (" +
                     (flag(a, "--run-id").empty() ? "ORCHARD_RUN_ID" : "--run-id") +
                     ") must be 1 to 128 of [A-Za-z0-9._-]: it tags the log lines");
  }
  Input q = load_input(a, "--q", "Q");
  Input k = load_input(a, "--k", "K");
  Input v = load_input(a, "--v", "V");
  check_same(k, q, "K", false);
  check_same(v, k, "V", true);
  bool bwd = a.flags.count("--do") != 0;
  Input dout;
  if (bwd) {
    dout = load_input(a, "--do", "dO");
    check_same(dout, q, "dO", true);
  }

  AttnShape shape;
  shape.B = int(q.B);
  shape.H = int(q.H);
  shape.Nq = int(q.N);
  shape.Nk = int(k.N);
  shape.D = int(q.D);
  shape.dtype = q.arr.type == NpyType::kF4 ? DType::kF32 : DType::kF16;
  shape.causal = a.flags.count("--causal") != 0;
  Selection sel = select(shape);
  if (!sel.ok) throw UsageError(sel.reason);

  double scale = 1.0 / std::sqrt(double(shape.D));
  std::string s = flag(a, "--scale");
  if (a.flags.count("--scale")) {
    char* end = nullptr;
    scale = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(scale) || !std::isfinite(float(scale))) {
      throw UsageError("--scale must be a finite number, got \"" + s + "\"");
    }
  }
  const AttnParams prm = attn_params(shape, scale);
  const uint64_t group_cap = dispatch_group_cap();
  const Storage storage = storage_flag(a);
  const size_t offset = offset_flag(a);
  const bool baseline = a.flags.count("--baseline") != 0;
  if (baseline && flag(a, "--baseline") != "plain") {
    throw UsageError("--baseline must be plain, got \"" + flag(a, "--baseline") + "\"");
  }
  if (baseline && !plain_refusal(shape).empty()) throw UsageError(plain_refusal(shape));

  std::string out = flag(a, "--out");
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec || !std::filesystem::is_directory(out)) {
    throw UsageError("cannot create output directory " + out + ": " +
                     (ec ? ec.message() : std::string("exists and is not a directory")));
  }

  std::unique_ptr<Backend> be = make_backend(backend_options(a));
  RunLog log(be->name(), run_id);
  if (baseline) {  // host/attn_plain.cpp: the same inputs and outputs, plain kernels
    run_plain(*be, log, shape, prm, storage, offset, group_cap,
              PlainInputs{&q.arr, &k.arr, &v.arr, bwd ? &dout.arr : nullptr}, out);
    return 0;
  }
  AttnSession ses(*be, log, shape, sel, prm, storage, offset);
  ses.set_group_cap(group_cap);
  try {
    // Pipelines (Metal) are made before each half's first dispatch, untimed;
    // a missing kernel fails in the half (ses.op()) that needs it.
    ses.prepare_forward();
    const std::vector<int64_t> oshape = {q.B, q.H, q.N, q.D};
    const std::vector<int64_t> kshape = {k.B, k.H, k.N, k.D};
    const std::vector<int64_t> rshape = {q.B, q.H, q.N};  // row statistics: LSE, Delta
    const NpyType nt = q.arr.type;

    // read_npy: data is count * itemsize
    Buffer bq = ses.upload("q", q.arr.shape, q.arr.data.data());
    Buffer bk = ses.upload("k", k.arr.shape, k.arr.data.data());
    Buffer bv = ses.upload("v", v.arr.shape, v.arr.data.data());
    Buffer bo = ses.alloc("o", oshape, shape.dtype);
    Buffer bl = ses.alloc("lse", rshape, DType::kF32);
    ses.forward({bq, bk, bv, bo, bl});
    save(ses, out, "o.npy", nt, oshape, bo);
    save(ses, out, "lse.npy", NpyType::kF4, rshape, bl);

    if (bwd) {
      ses.prepare_backward();
      Buffer bdo = ses.upload("do", dout.arr.shape, dout.arr.data.data());
      Buffer bdelta = ses.alloc("delta", rshape, DType::kF32);
      Buffer bdq = ses.alloc("dq", oshape, shape.dtype);
      Buffer bdk = ses.alloc("dk", kshape, shape.dtype), bdv = ses.alloc("dv", kshape, shape.dtype);
      ses.backward({bq, bk, bv, bo, bl, bdo, bdelta, bdq, bdk, bdv});
      save(ses, out, "dq.npy", nt, oshape, bdq);
      save(ses, out, "dk.npy", nt, kshape, bdk);
      save(ses, out, "dv.npy", nt, kshape, bdv);
    }
  } catch (const LogError&) {
    throw;  // the log itself failed: there is nowhere to log that
  } catch (const std::exception& e) {
    try {
      log.error(ses.op(), ses.current_kernel(), e.what());
    } catch (const LogError& le) {
      std::fprintf(stderr, "orchard-runner: %s\n", le.what());
    }
    throw;
  }

  std::printf(
      "{\"dispatches\":{\"fwd\":%d,\"bwd\":%d},\"kernels\":%s,\"ms\":%.3f,\"gpu_ms\":%.3f,"
      "\"time_source\":%s,\"passes\":%s,\"select\":%s}\n",
      ses.fwd_dispatches(), ses.bwd_dispatches(), json_list(ses.kernels()).c_str(), ses.ms(),
      ses.device_ms(), json_str(time_source_name(be->time_source())).c_str(),
      passes_json(ses.passes()).c_str(), json_str(sel.reason).c_str());
  return 0;
}

}  // namespace
}  // namespace orchard

int main(int argc, char** argv) {
  using namespace orchard;
  try {
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
        std::fputs(kUsage, stdout);
        return 0;
      }
    }
    Args a = parse_args(argc, argv);
    return a.cmd == "info" ? cmd_info(a) : cmd_run(a);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "orchard-runner: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orchard-runner: %s\n", e.what());
    return 1;
  }
}
