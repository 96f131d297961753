// attn_plain.cpp — the plain-attention baseline's dispatch sequence (attn_plain.h).
//
// Seven kernels (kernels/attn_plain.metal), each one pass of its own in the
// JSON ("fwd_scores", ..., "bwd_dkv"), each split across dispatches like the
// flash passes (select.h split_grid) and timed per dispatch the same way.
#include "attn_plain.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "run_json.h"

namespace orchard {
namespace plain {
namespace {

constexpr int kThreads = 128;  // kPlainThreads in attn_plain.metal

// One plain kernel: its pass name (in run's JSON) and name stem.
struct Kernel {
  const char* pass;
  const char* stem;  // kernel name = "attn_plain_" + stem + "_" + dtype tag (softmax: no tag)
  bool bwd;
};

const Kernel kScores{"fwd_scores", "scores", false};
const Kernel kSoftmax{"fwd_softmax", "softmax", false};
const Kernel kPV{"fwd_pv", "pv", false};
const Kernel kDelta{"bwd_delta", "delta", true};
const Kernel kDS{"bwd_ds", "ds", true};
const Kernel kDQ{"bwd_dq", "dq", true};
const Kernel kDKV{"bwd_dkv", "dkv", true};

std::string name_of(const Kernel& k, DType dt) {
  std::string n = std::string("attn_plain_") + k.stem;
  if (std::strcmp(k.stem, "softmax") == 0) return n;  // float32 S: one kernel for both dtypes
  return n + "_" + dtype_tag(dt);
}



class Plain {
 public:
  Plain(Backend& be, RunLog& log, const AttnShape& shape, const AttnParams& prm, Storage storage,
        size_t offset, uint64_t cap)
      : be_(be), log_(log), shape_(shape), prm_(prm), storage_(storage), offset_(offset), cap_(cap) {}

  Buffer alloc(const std::string& name, const std::vector<int64_t>& dims, DType dt) {
    size_t bytes = dtype_size(dt);
    for (int64_t d : dims) bytes *= size_t(d);
    Buffer b = be_.alloc(bytes, name, storage_, offset_);
    log_.alloc(name, bytes, storage_name(storage_), dims, dtype_tag(dt));
    return b;
  }

  Buffer upload(const NpyArray& a, const std::string& name) {
    Buffer b = alloc(name, a.shape, shape_.dtype);
    orchard::upload(be_, b, a.data.data());
    return b;
  }

  // Fills b with NaN, so that an element a kernel never writes shows.
  void poison(const Buffer& b, DType dt) {
    std::vector<unsigned char> host(b.bytes);
    if (dt == DType::kF32) {
      const uint32_t nan = 0x7fc00000u;
      for (size_t i = 0; i + 4 <= host.size(); i += 4) std::memcpy(&host[i], &nan, 4);
    } else {
      const uint16_t nan = 0x7e00u;
      for (size_t i = 0; i + 2 <= host.size(); i += 2) std::memcpy(&host[i], &nan, 2);
    }
    orchard::upload(be_, b, host.data());
  }

  // One pass: `count` output elements per (b, h), one thread each; work is
  // the multiply-adds of one thread (for the split bound).
  void dispatch(const Kernel& k, int64_t count, uint64_t work, std::vector<Arg> args,
                const std::vector<std::pair<const Buffer*, DType>>& outs) {
    const std::string name = name_of(k, shape_.dtype);
    current_ = name;
    for (const auto& o : outs) poison(*o.first, o.second);
    PassStats ps;
    ps.pass = k.pass;
    ps.kernel = name;
    ps.grid.x = uint32_t((count + kThreads - 1) / kThreads);
    ps.grid.y = uint32_t(shape_.H);
    ps.grid.z = uint32_t(shape_.B);
    uint64_t per_group = work * kThreads;
    ps.max_groups = per_group == 0 ? kMaxWorkPerDispatch : std::max<uint64_t>(1, kMaxWorkPerDispatch / per_group);
    if (cap_ > 0 && cap_ < ps.max_groups) ps.max_groups = cap_;
    const std::vector<GridPart> parts = split_grid(ps.grid, ps.max_groups);
    AttnParams prm = prm_;
    args.push_back(Arg::raw(int(args.size()), &prm, sizeof prm));
    Dim3 threads;
    threads.x = kThreads;
    for (size_t i = 0; i < parts.size(); ++i) {
      prm.group_x0 = int(parts[i].origin.x);
      prm.group_y0 = int(parts[i].origin.y);
      prm.group_z0 = int(parts[i].origin.z);
      const std::string of = std::to_string(i + 1) + "/" + std::to_string(parts.size());
      auto t0 = std::chrono::steady_clock::now();
      double device_s = 0;
      try {
        device_s = be_.dispatch(name, parts[i].size, threads, args);
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string(e.what()) + " (plain baseline, pass " + ps.pass +
                                 ", dispatch " + of + ")");
      }
      auto dt = std::chrono::steady_clock::now() - t0;
      ps.wall_ms += std::chrono::duration<double, std::milli>(dt).count();
      ps.device_ms += device_s * 1e3;
      ++ps.dispatches;
      ++(k.bwd ? bwd_ : fwd_);
      log_.call(k.bwd, name, {shape_.B, shape_.H, shape_.Nq, shape_.Nk, shape_.D},
                dtype_tag(shape_.dtype), shape_.causal, storage_name(storage_),
                std::chrono::duration_cast<std::chrono::microseconds>(dt).count(),
                int64_t(std::llround(device_s * 1e6)), time_source_name(be_.time_source()), of);
    }
    passes_.push_back(ps);
    current_.clear();
  }

  void prepare(const std::vector<const Kernel*>& ks) {
    for (const Kernel* k : ks) {
      current_ = name_of(*k, shape_.dtype);
      be_.prepare({current_});
    }
    current_.clear();
  }

  void save(const std::string& dir, const char* file, NpyType type, const std::vector<int64_t>& shape,
            const Buffer& b) {
    std::vector<unsigned char> host(b.bytes);
    orchard::download(be_, b, host.data());
    write_npy((std::filesystem::path(dir) / file).string(), type, shape, host.data(), host.size());
  }

  const std::string& current() const { return current_; }

  std::string json() const {
    double ms = 0, device_ms = 0;
    std::vector<std::string> kernels;
    for (const PassStats& p : passes_) {
      ms += p.wall_ms;
      device_ms += p.device_ms;
      kernels.push_back(p.kernel);
    }
    char head[128];
    std::snprintf(head, sizeof head, "{\"dispatches\":{\"fwd\":%d,\"bwd\":%d},\"kernels\":", fwd_, bwd_);
    char nums[128];
    std::snprintf(nums, sizeof nums, ",\"ms\":%.3f,\"gpu_ms\":%.3f,\"time_source\":", ms, device_ms);
    return std::string(head) + json_list(kernels) + nums + json_str(time_source_name(be_.time_source())) +
           ",\"passes\":" + passes_json(passes_, false) + ",\"select\":" +
           json_str("plain baseline: S materialised in device memory, one thread per element") +
           ",\"baseline\":\"plain\"}";
  }

 private:
  Backend& be_;
  RunLog& log_;
  AttnShape shape_;
  AttnParams prm_;
  Storage storage_;
  size_t offset_;
  uint64_t cap_;
  int fwd_ = 0, bwd_ = 0;
  std::vector<PassStats> passes_;
  std::string current_;
};

}  // namespace
}  // namespace plain

std::vector<std::string> plain_kernel_names() {
  using namespace plain;
  std::vector<std::string> out;
  out.push_back(name_of(kSoftmax, DType::kF32));
  for (DType dt : {DType::kF32, DType::kF16}) {
    for (const Kernel* k : {&kScores, &kPV, &kDelta, &kDS, &kDQ, &kDKV}) out.push_back(name_of(*k, dt));
  }
  return out;
}

std::string plain_refusal(const AttnShape& s) {
  const int64_t n = int64_t(s.B) * s.H * s.Nq * s.Nk;
  if (n > int64_t(INT32_MAX)) {
    return "the plain baseline materialises S as B*H*Nq*Nk = " + std::to_string(n) +
           " float32 elements, more than its 32-bit indexing allows (2147483647): use a smaller shape";
  }
  return "";
}

void run_plain(Backend& be, RunLog& log, const AttnShape& shape, const AttnParams& prm,
               Storage storage, size_t offset, uint64_t group_cap, const PlainInputs& in,
               const std::string& out_dir) {
  using namespace plain;
  Plain pl(be, log, shape, prm, storage, offset, group_cap);
  const char* op = "fwd";
  try {
    pl.prepare({&kScores, &kSoftmax, &kPV});
    const int64_t B = shape.B, H = shape.H, Nq = shape.Nq, Nk = shape.Nk, D = shape.D;
    const std::vector<int64_t> qshape = {B, H, Nq, D}, kshape = {B, H, Nk, D};
    const std::vector<int64_t> rshape = {B, H, Nq}, sshape = {B, H, Nq, Nk};
    const NpyType nt = in.q->type;
    const DType dt = shape.dtype;
    Buffer bq = pl.upload(*in.q, "q"), bk = pl.upload(*in.k, "k"), bv = pl.upload(*in.v, "v");
    Buffer bs = pl.alloc("s", sshape, DType::kF32);  // S, then P in place
    Buffer bo = pl.alloc("o", qshape, dt);
    Buffer bl = pl.alloc("lse", rshape, DType::kF32);
    const uint64_t d = uint64_t(D), nq = uint64_t(Nq), nk = uint64_t(Nk);
    pl.dispatch(kScores, Nq * Nk, d, {Arg::buf(0, bq), Arg::buf(1, bk), Arg::buf(2, bs)},
                {{&bs, DType::kF32}});
    pl.dispatch(kSoftmax, Nq, 3 * nk, {Arg::buf(0, bs), Arg::buf(1, bl)}, {{&bl, DType::kF32}});
    pl.dispatch(kPV, Nq * D, nk, {Arg::buf(0, bs), Arg::buf(1, bv), Arg::buf(2, bo)}, {{&bo, dt}});
    pl.save(out_dir, "o.npy", nt, qshape, bo);
    pl.save(out_dir, "lse.npy", NpyType::kF4, rshape, bl);
    if (in.dout != nullptr) {
      op = "bwd";
      pl.prepare({&kDelta, &kDS, &kDQ, &kDKV});
      Buffer bdo = pl.upload(*in.dout, "do");
      Buffer bdelta = pl.alloc("delta", rshape, DType::kF32);
      Buffer bds = pl.alloc("ds", sshape, DType::kF32);
      Buffer bdq = pl.alloc("dq", qshape, dt);
      Buffer bdk = pl.alloc("dk", kshape, dt), bdv = pl.alloc("dv", kshape, dt);
      pl.dispatch(kDelta, Nq, d, {Arg::buf(0, bo), Arg::buf(1, bdo), Arg::buf(2, bdelta)},
                  {{&bdelta, DType::kF32}});
      pl.dispatch(kDS, Nq * Nk, d,
                  {Arg::buf(0, bs), Arg::buf(1, bv), Arg::buf(2, bdo), Arg::buf(3, bdelta), Arg::buf(4, bds)},
                  {{&bds, DType::kF32}});
      pl.dispatch(kDQ, Nq * D, nk, {Arg::buf(0, bds), Arg::buf(1, bk), Arg::buf(2, bdq)}, {{&bdq, dt}});
      pl.dispatch(kDKV, Nk * D, 2 * nq,
                  {Arg::buf(0, bs), Arg::buf(1, bds), Arg::buf(2, bq), Arg::buf(3, bdo), Arg::buf(4, bdk),
                   Arg::buf(5, bdv)},
                  {{&bdk, dt}, {&bdv, dt}});
      pl.save(out_dir, "dq.npy", nt, qshape, bdq);
      pl.save(out_dir, "dk.npy", nt, kshape, bdk);
      pl.save(out_dir, "dv.npy", nt, kshape, bdv);
    }
  } catch (const LogError&) {
    throw;
  } catch (const std::exception& e) {
    try {
      log.error(op, pl.current(), e.what());
    } catch (const LogError& le) {
      std::fprintf(stderr, "orchard-runner: %s\n", le.what());
    }
    throw;
  }
  std::printf("%s\n", pl.json().c_str());
}

}  // namespace orchard
