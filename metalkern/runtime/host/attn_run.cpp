// attn_run.cpp — the attention dispatch sequence (attn_run.h).
#include "attn_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace orchard {
namespace attn_detail {

// Fills b with NaN: in place when shared, else through upload() (a private
// buffer is not host-visible).
void poison(Backend& be, const Buffer& b, DType dt) {
  std::vector<unsigned char> staged;
  unsigned char* p = nullptr;
  if (b.storage == Storage::kShared) {
    p = static_cast<unsigned char*>(b.data());
  } else {
    staged.resize(b.bytes);
    p = staged.data();
  }
  if (dt == DType::kF32) {
    const uint32_t nan = 0x7fc00000u;
    for (size_t i = 0; i + 4 <= b.bytes; i += 4) std::memcpy(p + i, &nan, 4);
  } else {
    const uint16_t nan = 0x7e00u;
    for (size_t i = 0; i + 2 <= b.bytes; i += 2) std::memcpy(p + i, &nan, 2);
  }
  if (b.storage != Storage::kShared) upload(be, b, p);
}

}  // namespace attn_detail

AttnParams attn_params(const AttnShape& shape, double scale) {
  AttnParams prm;
  prm.B = shape.B;
  prm.H = shape.H;
  prm.Nq = shape.Nq;
  prm.Nk = shape.Nk;
  prm.D = shape.D;
  prm.causal = shape.causal ? 1 : 0;
  prm.scale = float(scale);
  prm.scale_log2 = float(scale * 1.4426950408889634);
  prm.group_x0 = prm.group_y0 = prm.group_z0 = 0;  // set per dispatch by AttnSession
  return prm;
}

const char* pass_name(Pass p) {
  switch (p) {
    case Pass::kFwd: return "fwd";
    case Pass::kBwdDq: return "bwd_dq";
    case Pass::kBwdDkv: return "bwd_dkv";
  }
  return "";
}

AttnSession::AttnSession(Backend& be, RunLog& log, const AttnShape& shape, const Selection& sel,
                         const AttnParams& prm, Storage storage, size_t offset)
    : be_(be), log_(log), shape_(shape), sel_(sel), prm_(prm), storage_(storage), offset_(offset) {
  if (!sel_.ok) throw std::logic_error("AttnSession: unsupported shape: " + sel_.reason);
}

Buffer AttnSession::alloc(const std::string& name, const std::vector<int64_t>& dims, DType dt) {
  size_t bytes = dtype_size(dt);
  for (int64_t d : dims) bytes *= size_t(d);
  Buffer b = be_.alloc(bytes, name, storage_, offset_);
  log_.alloc(name, bytes, storage_name(storage_), dims, dtype_tag(dt));
  return b;
}

Buffer AttnSession::upload(const std::string& name, const std::vector<int64_t>& dims, const void* data) {
  Buffer b = alloc(name, dims, shape_.dtype);
  orchard::upload(be_, b, data);
  return b;
}

std::vector<unsigned char> AttnSession::download(const Buffer& b) {
  std::vector<unsigned char> host(b.bytes);
  orchard::download(be_, b, host.data());
  return host;
}

void AttnSession::prepare_forward() {
  op_ = "fwd";
  prepare({kernel_name(Pass::kFwd, shape_.dtype, sel_.bucket.fwd(shape_.dtype))});
}

void AttnSession::forward(const FwdBuffers& b) {
  op_ = "fwd";
  dispatch(Pass::kFwd, sel_.bucket.fwd(shape_.dtype),
           {Arg::buf(0, b.q), Arg::buf(1, b.k), Arg::buf(2, b.v), Arg::buf(3, b.o), Arg::buf(4, b.lse)},
           {{&b.o, shape_.dtype}, {&b.lse, DType::kF32}});
}

void AttnSession::prepare_backward() {
  op_ = "bwd";
  prepare({kernel_name(Pass::kBwdDq, shape_.dtype, sel_.bucket.dq(shape_.dtype)),
           kernel_name(Pass::kBwdDkv, shape_.dtype, sel_.bucket.dkv(shape_.dtype))});
}

void AttnSession::backward(const BwdBuffers& b) {
  op_ = "bwd";
  // dQ computes Delta = rowsum(dO * O) for its rows and writes it for dK/dV.
  dispatch(Pass::kBwdDq, sel_.bucket.dq(shape_.dtype),
           {Arg::buf(0, b.q), Arg::buf(1, b.k), Arg::buf(2, b.v), Arg::buf(3, b.o), Arg::buf(4, b.dout),
            Arg::buf(5, b.lse), Arg::buf(6, b.delta), Arg::buf(7, b.dq)},
           {{&b.delta, DType::kF32}, {&b.dq, shape_.dtype}});
  dispatch(Pass::kBwdDkv, sel_.bucket.dkv(shape_.dtype),
           {Arg::buf(0, b.q), Arg::buf(1, b.k), Arg::buf(2, b.v), Arg::buf(3, b.dout), Arg::buf(4, b.lse),
            Arg::buf(5, b.delta), Arg::buf(6, b.dk), Arg::buf(7, b.dv)},
           {{&b.dk, shape_.dtype}, {&b.dv, shape_.dtype}});
}

#ifdef ORCHARD_EMU_COUNTERS
namespace {
// One dispatch's counts into its pass: sums, except the per-threadgroup
// figures (max over the pass's groups). The kernel's declared threadgroup
// memory must be what select.h's threadgroup_bytes() checked against the
// device's limit.
void add_work(orchard_emu::WorkCounters& w, const orchard_emu::WorkCounters& d, const std::string& kernel,
              size_t host_tg) {
  if (d.threadgroup_bytes != host_tg)
    throw std::runtime_error("kernel " + kernel + " declares " + std::to_string(d.threadgroup_bytes) +
                             " bytes of threadgroup memory but select.h's threadgroup_bytes() says " +
                             std::to_string(host_tg) + ": make them agree");
  w.simdgroup_mma += d.simdgroup_mma;
  w.threadgroup_traffic_bytes += d.threadgroup_traffic_bytes;
  w.device_bytes += d.device_bytes;
  w.threadgroup_bytes = std::max(w.threadgroup_bytes, d.threadgroup_bytes);
  w.barriers = std::max(w.barriers, d.barriers);
}
}  // namespace
#endif

void AttnSession::dispatch(Pass pass, const Tile& t, std::vector<Arg> args,
                           const std::vector<std::pair<const Buffer*, DType>>& outs) {
  std::string name = kernel_name(pass, shape_.dtype, t);
  current_ = name;
  if (poison_)
    for (const auto& o : outs) attn_detail::poison(be_, *o.first, o.second);
  Limits lim = be_.limits();
  size_t tg = threadgroup_bytes(pass, t, shape_.dtype);
  if (uint32_t(kThreadsPerGroup) > lim.max_threads_per_threadgroup || tg > lim.max_threadgroup_memory ||
      lim.simd_width != 32) {
    throw std::runtime_error("kernel " + name + " needs " + std::to_string(kThreadsPerGroup) + " threads, " +
                             std::to_string(tg) +
                             " bytes of threadgroup memory and 32-wide simdgroups; the device "
                             "allows " +
                             std::to_string(lim.max_threads_per_threadgroup) + " threads, " +
                             std::to_string(lim.max_threadgroup_memory) + " bytes, simd width " +
                             std::to_string(lim.simd_width));
  }
  PassStats ps;
  ps.pass = pass_name(pass);
  ps.kernel = name;
  ps.grid = grid_for(pass, t, shape_);
  ps.max_groups = max_groups_per_dispatch(pass, t, shape_, group_cap_);
  const std::vector<GridPart> parts = split_grid(ps.grid, ps.max_groups);
  AttnParams prm = prm_;  // group_{x,y,z}0 set per part
  args.push_back(Arg::raw(int(args.size()), &prm, sizeof prm));
  Dim3 threads;
  threads.x = kThreadsPerGroup;
  const bool bwd = pass != Pass::kFwd;
  const std::string shape5 = shape_str({shape_.B, shape_.H, shape_.Nq, shape_.Nk, shape_.D});
#ifdef ORCHARD_EMU_COUNTERS
  (void)orchard_emu::take_work_counters();  // nothing but this pass's dispatches
#endif
  for (size_t i = 0; i < parts.size(); ++i) {
    const GridPart& part = parts[i];
    prm.group_x0 = int(part.origin.x);
    prm.group_y0 = int(part.origin.y);
    prm.group_z0 = int(part.origin.z);
    const std::string of = std::to_string(i + 1) + "/" + std::to_string(parts.size());
    auto t0 = std::chrono::steady_clock::now();
    double device_s = 0;
    try {
      device_s = be_.dispatch(name, part.size, threads, args);
    } catch (const std::exception& e) {
      // The backend names the kernel; add the pass, the shape and the part.
      throw std::runtime_error(std::string(e.what()) + " (pass " + ps.pass + ", shape " + shape5 + " " +
                               dtype_tag(shape_.dtype) + (shape_.causal ? " causal" : "") + ", dispatch " + of +
                               " of " + std::to_string(part.size.x) + "x" + std::to_string(part.size.y) + "x" +
                               std::to_string(part.size.z) + " threadgroups)");
    }
    auto dt = std::chrono::steady_clock::now() - t0;
    const double wall_ms = std::chrono::duration<double, std::milli>(dt).count();
    ps.wall_ms += wall_ms;
    ps.device_ms += device_s * 1e3;
    ++ps.dispatches;
    ++(bwd ? bwd_ : fwd_);
#ifdef ORCHARD_EMU_COUNTERS
    add_work(ps.work, orchard_emu::take_work_counters(), name, tg);
#endif
    log_.call(bwd, name, {shape_.B, shape_.H, shape_.Nq, shape_.Nk, shape_.D}, dtype_tag(shape_.dtype),
              shape_.causal, storage_name(storage_),
              std::chrono::duration_cast<std::chrono::microseconds>(dt).count(),
              int64_t(std::llround(device_s * 1e6)), time_source_name(be_.time_source()), of);
  }
  ms_ += ps.wall_ms;
  device_ms_ += ps.device_ms;
  kernels_.push_back(name);
  passes_.push_back(ps);
  current_.clear();
}

void AttnSession::prepare(const std::vector<std::string>& kernels) {
  for (const std::string& k : kernels) {
    current_ = k;
    be_.prepare({k});
  }
  current_.clear();
}

}  // namespace orchard
