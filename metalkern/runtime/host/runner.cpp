// runner.cpp — the orchard attention runner (one executable per backend).
//
//   orchard-runner [common flags] info
//   orchard-runner [common flags] run --q Q.npy --k K.npy --v V.npy [--do DO.npy] [--causal]
//                                     [--scale S] --out DIR
//   common flags: [--mode fibers|threads] [--workers N] [--library PATH] [--run-id ID]
//
// The contract (files, JSON, exit codes) is documented in docs/runtime.md.
// Exit codes: 0 ok, 1 kernel/runtime failure, 2 bad input or usage. Errors go
// to stderr as one line starting with "orchard-runner: ". The hardware (or
// its emulation) is reached only through orchard::Backend.
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

#include "backend.h"
#include "npy.h"
#include "orchard/params.h"
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
    "                                         [--causal] [--scale S] --out DIR\n"
    "common flags: --mode fibers|threads (emu), --workers N (emu), --library PATH (metal),\n"
    "              --run-id ID (tags log lines)\n"
    "Writes DIR/o.npy, DIR/lse.npy (natural log, float32) and with --do dq.npy, dk.npy,\n"
    "dv.npy; prints one JSON line. Exit 0 ok, 1 kernel/runtime failure, 2 bad input.\n";

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
      {"--workers", true}, {"--library", true}, {"--run-id", true}};
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f.rfind("--", 0) != 0) {
      if (!a.cmd.empty()) throw UsageError("unexpected argument \"" + f + "\"; see orchard-runner --help");
      if (f != "info" && f != "run") {
        throw UsageError("unknown command \"" + f + "\" (want info or run); see orchard-runner --help");
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
    if (it == kTakesValue.end()) throw UsageError("unknown flag \"" + f + "\"; see orchard-runner --help");
    if (it->second && !inline_val) {
      if (i + 1 >= argc) throw UsageError("flag " + f + " needs a value");
      val = argv[++i];
    } else if (!it->second && inline_val) {
      throw UsageError("flag " + f + " takes no value");
    }
    if (a.flags.count(f)) throw UsageError("flag " + f + " given twice");
    a.flags[f] = val;
  }
  if (a.cmd.empty()) throw UsageError("missing command (info or run); see orchard-runner --help");
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
  return o;
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + json_str(v[i]);
  return out + "]";
}

int cmd_info(const Args& a) {
  for (const auto& kv : a.flags) {
    if (kv.first != "--mode" && kv.first != "--workers" && kv.first != "--library" &&
        kv.first != "--run-id") {
      throw UsageError("flag " + kv.first + " is not valid for info");
    }
  }
  std::unique_ptr<Backend> be = make_backend(backend_options(a));
  Limits lim = be->limits();
  std::vector<std::string> have = be->kernels();
  std::vector<std::string> missing;
  for (const std::string& k : all_kernel_names()) {
    bool found = false;
    for (const std::string& h : have) found = found || h == k;
    if (!found) missing.push_back(k);
  }
  std::printf(
      "{\"backend\":%s,\"device\":%s,\"limits\":{\"max_threads_per_threadgroup\":%u,"
      "\"max_threadgroup_memory\":%u,\"simd_width\":%u},\"kernels\":%s,\"missing_kernels\":%s,"
      "\"head_dim\":{\"min\":1,\"max\":%d}}\n",
      json_str(be->name()).c_str(), json_str(be->device()).c_str(),
      lim.max_threads_per_threadgroup, lim.max_threadgroup_memory, lim.simd_width,
      json_list(have).c_str(), json_list(missing).c_str(), kMaxHeadDim);
  return 0;
}

// ---- run ----------------------------------------------------------------

// Hook for per-dispatch-group kernel-call logging (added by a later task); called once
// for the forward group and once for the backward group.
void log_kernel_call(const std::string& run_id, const std::string& group,
                     const std::vector<std::string>& kernels, const AttnShape& shape, double ms) {
  (void)run_id;
  (void)group;
  (void)kernels;
  (void)shape;
  (void)ms;
}

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

void poison(const Buffer& b, DType dt) {
  if (dt == DType::kF32) {
    const uint32_t nan = 0x7fc00000u;
    auto* p = static_cast<uint32_t*>(b.data);
    for (size_t i = 0; i < b.bytes / 4; ++i) p[i] = nan;
  } else {
    const uint16_t nan = 0x7e00u;
    auto* p = static_cast<uint16_t*>(b.data);
    for (size_t i = 0; i < b.bytes / 2; ++i) p[i] = nan;
  }
}

class Session {
 public:
  Session(Backend& be, const AttnShape& shape, const AttnParams& prm)
      : be_(be), shape_(shape), prm_(prm) {}

  Buffer upload(const Input& in, const std::string& label) {
    Buffer b = be_.alloc(in.arr.data.size(), label);
    std::memcpy(b.data, in.arr.data.data(), in.arr.data.size());
    return b;
  }

  // Poisons the outputs with NaN, checks limits, dispatches, and records name and time.
  void dispatch(Pass pass, const Tile& t, std::vector<Arg> args,
                const std::vector<std::pair<const Buffer*, DType>>& outs) {
    std::string name = kernel_name(pass, shape_.dtype, t);
    for (const auto& o : outs) poison(*o.first, o.second);
    Limits lim = be_.limits();
    size_t tg = threadgroup_bytes(pass, t);
    if (uint32_t(kThreadsPerGroup) > lim.max_threads_per_threadgroup ||
        tg > lim.max_threadgroup_memory || lim.simd_width != 32) {
      throw std::runtime_error("kernel " + name + " needs " + std::to_string(kThreadsPerGroup) +
                               " threads, " + std::to_string(tg) +
                               " bytes of threadgroup memory and 32-wide simdgroups; the device "
                               "allows " + std::to_string(lim.max_threads_per_threadgroup) +
                               " threads, " + std::to_string(lim.max_threadgroup_memory) +
                               " bytes, simd width " + std::to_string(lim.simd_width));
    }
    args.push_back(Arg::raw(int(args.size()), &prm_, sizeof prm_));
    Dim3 threads;
    threads.x = kThreadsPerGroup;
    auto t0 = std::chrono::steady_clock::now();
    be_.dispatch(name, grid_for(pass, t, shape_), threads, args);
    ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    kernels_.push_back(name);
  }

  double ms() const { return ms_; }
  const std::vector<std::string>& kernels() const { return kernels_; }

 private:
  Backend& be_;
  AttnShape shape_;
  AttnParams prm_;
  double ms_ = 0;
  std::vector<std::string> kernels_;
};

void save(const std::string& dir, const char* file, NpyType type, std::vector<int64_t> shape,
          const Buffer& b) {
  write_npy((std::filesystem::path(dir) / file).string(), type, shape, b.data, b.bytes);
}

int cmd_run(const Args& a) {
  for (const char* req : {"--q", "--k", "--v", "--out"}) {
    if (flag(a, req).empty()) throw UsageError(std::string("run needs ") + req + "; see orchard-runner --help");
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
  AttnParams prm;
  prm.B = shape.B;
  prm.H = shape.H;
  prm.Nq = shape.Nq;
  prm.Nk = shape.Nk;
  prm.D = shape.D;
  prm.causal = shape.causal ? 1 : 0;
  prm.scale = float(scale);
  prm.scale_log2 = float(scale * 1.4426950408889634);

  std::string out = flag(a, "--out");
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec || !std::filesystem::is_directory(out)) {
    throw UsageError("cannot create output directory " + out + ": " +
                     (ec ? ec.message() : std::string("exists and is not a directory")));
  }

  std::unique_ptr<Backend> be = make_backend(backend_options(a));
  Session ses(*be, shape, prm);
  const size_t esz = dtype_size(shape.dtype);
  const size_t rows = size_t(shape.B) * shape.H * shape.Nq;
  const std::vector<int64_t> oshape = {q.B, q.H, q.N, q.D};
  const std::vector<int64_t> kshape = {k.B, k.H, k.N, k.D};
  const NpyType nt = q.arr.type;

  Buffer bq = ses.upload(q, "q"), bk = ses.upload(k, "k"), bv = ses.upload(v, "v");
  Buffer bo = be->alloc(rows * shape.D * esz, "o");
  Buffer bl = be->alloc(rows * 4, "lse");
  ses.dispatch(Pass::kFwd, sel.bucket.fwd,
               {Arg::buf(0, bq), Arg::buf(1, bk), Arg::buf(2, bv), Arg::buf(3, bo), Arg::buf(4, bl)},
               {{&bo, shape.dtype}, {&bl, DType::kF32}});
  log_kernel_call(flag(a, "--run-id"), "fwd", ses.kernels(), shape, ses.ms());
  save(out, "o.npy", nt, oshape, bo);
  save(out, "lse.npy", NpyType::kF4, {q.B, q.H, q.N}, bl);

  if (bwd) {
    double fwd_ms = ses.ms();
    size_t nk = ses.kernels().size();
    Buffer bdo = ses.upload(dout, "do");
    Buffer bdelta = be->alloc(rows * 4, "delta");
    Buffer bdq = be->alloc(bo.bytes, "dq");
    Buffer bdk = be->alloc(bk.bytes, "dk"), bdv = be->alloc(bv.bytes, "dv");
    ses.dispatch(Pass::kBwdPre, Tile{}, {Arg::buf(0, bo), Arg::buf(1, bdo), Arg::buf(2, bdelta)},
                 {{&bdelta, DType::kF32}});
    ses.dispatch(Pass::kBwdDq, sel.bucket.dq,
                 {Arg::buf(0, bq), Arg::buf(1, bk), Arg::buf(2, bv), Arg::buf(3, bdo),
                  Arg::buf(4, bl), Arg::buf(5, bdelta), Arg::buf(6, bdq)},
                 {{&bdq, shape.dtype}});
    ses.dispatch(Pass::kBwdDkv, sel.bucket.dkv,
                 {Arg::buf(0, bq), Arg::buf(1, bk), Arg::buf(2, bv), Arg::buf(3, bdo),
                  Arg::buf(4, bl), Arg::buf(5, bdelta), Arg::buf(6, bdk), Arg::buf(7, bdv)},
                 {{&bdk, shape.dtype}, {&bdv, shape.dtype}});
    std::vector<std::string> bk_names(ses.kernels().begin() + std::ptrdiff_t(nk), ses.kernels().end());
    log_kernel_call(flag(a, "--run-id"), "bwd", bk_names, shape, ses.ms() - fwd_ms);
    save(out, "dq.npy", nt, oshape, bdq);
    save(out, "dk.npy", nt, kshape, bdk);
    save(out, "dv.npy", nt, kshape, bdv);
  }

  std::printf("{\"dispatches\":{\"fwd\":1,\"bwd\":%d},\"kernels\":%s,\"ms\":%.3f,\"select\":%s}\n",
              bwd ? 3 : 0, json_list(ses.kernels()).c_str(), ses.ms(), json_str(sel.reason).c_str());
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
