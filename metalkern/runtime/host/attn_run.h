// attn_run.h — the attention dispatch sequence, shared by the runner
// (runner.cpp) and the PyTorch op library (torch/): given a Backend, a shape,
// the params and the tensors' Buffers, it chooses the kernels (select.h),
// makes the grids, splits large grids across dispatches, poisons outputs,
// dispatches the forward pass and the two backward passes and logs every
// dispatch (runlog.h). It allocates nothing but what the caller asks for
// (alloc/upload), so the op can hand it buffers that wrap torch's memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "backend.h"
#include "orchard/params.h"
#include "runlog.h"
#include "select.h"
#ifdef ORCHARD_EMU_COUNTERS
#include "orchard_emu/counters_api.h"  // orchard-runner-emu-counters: work counters per pass
#endif

namespace orchard {

// The kernels' params for shape and a natural-domain softmax scale
// (group_{x,y,z}0 are set per dispatch).
AttnParams attn_params(const AttnShape& shape, double scale);

// The "fwd", "bwd_dq", "bwd_dkv" of the run's JSON and errors.
const char* pass_name(Pass p);

// What one pass did (the runner's "passes" JSON).
struct PassStats {
  std::string pass, kernel;
  Dim3 grid;
  uint64_t max_groups = 0;
  int dispatches = 0;
  double wall_ms = 0, device_ms = 0;
#ifdef ORCHARD_EMU_COUNTERS
  // The counting build's work (sums, except threadgroup_bytes and barriers:
  // the maximum over the pass's threadgroups).
  orchard_emu::WorkCounters work;
#endif
};

// The forward pass's tensors: q, k, v in, o and lse out.
struct FwdBuffers {
  const Buffer &q, &k, &v, &o, &lse;
};

// The backward passes' tensors: q, k, v, o, lse, do in; delta scratch
// ([B, H, Nq] float32, written by dQ, read by dK/dV); dq, dk, dv out.
struct BwdBuffers {
  const Buffer &q, &k, &v, &o, &lse, &dout, &delta, &dq, &dk, &dv;
};

// One run's buffers and dispatches. Every allocation is an ALLOC line and every
// finished dispatch a FWD or BWD line (one per dispatch, naming its kernel), so
// the log's counts equal the dispatches the JSON line reports.
class AttnSession {
 public:
  // sel must be select(shape) with sel.ok. storage and offset are those of
  // the buffers alloc() makes and the storage= the log lines name.
  AttnSession(Backend& be, RunLog& log, const AttnShape& shape, const Selection& sel,
              const AttnParams& prm, Storage storage, size_t offset);

  // A buffer for a tensor of the given dims and dtype, in the run's storage
  // mode, bound at the run's offset.
  Buffer alloc(const std::string& name, const std::vector<int64_t>& dims, DType dt);
  // alloc() filled with the bytes at data (the tensor's dims in the shape's dtype).
  Buffer upload(const std::string& name, const std::vector<int64_t>& dims, const void* data);
  // The bytes of b, read back through download() (staged when private).
  std::vector<unsigned char> download(const Buffer& b);

  // The forward pass: prepare its kernel (untimed), then dispatch it.
  void prepare_forward();
  void forward(const FwdBuffers& b);
  // The backward passes: prepare their kernels, then dQ (with Delta), dK/dV.
  void prepare_backward();
  void backward(const BwdBuffers& b);

  // Poisons the outputs with NaN (unless set_poison(false)), checks limits,
  // then runs the pass as one or more dispatches (split_grid: at most
  // max_groups_per_dispatch threadgroups each, the part's origin in the
  // params), recording name and times and logging each dispatch.
  void dispatch(Pass pass, const Tile& t, std::vector<Arg> args,
                const std::vector<std::pair<const Buffer*, DType>>& outs);
  // Makes the kernels' pipelines (Backend::prepare) one by one, untimed; a
  // failure leaves current_kernel() naming the kernel for the ERROR line.
  void prepare(const std::vector<std::string>& kernels);

  // At most cap threadgroups per dispatch (0: only the work bound).
  void set_group_cap(uint64_t cap) { group_cap_ = cap; }
  // Whether outputs are filled with NaN before their pass (default on: a
  // kernel that skips an element shows). The op turns it off: its outputs
  // are torch's memory, and on Metal poisoning a private buffer needs a blit.
  void set_poison(bool on) { poison_ = on; }

  double ms() const { return ms_; }
  double device_ms() const { return device_ms_; }
  const std::vector<std::string>& kernels() const { return kernels_; }
  const std::vector<PassStats>& passes() const { return passes_; }
  int fwd_dispatches() const { return fwd_; }
  int bwd_dispatches() const { return bwd_; }
  // The kernel of the dispatch under way ("" between dispatches).
  const std::string& current_kernel() const { return current_; }
  // "fwd" or "bwd": the half under way (or last run), for an ERROR line.
  const char* op() const { return op_; }

 private:
  Backend& be_;
  RunLog& log_;
  AttnShape shape_;
  Selection sel_;
  AttnParams prm_;
  Storage storage_;
  size_t offset_;
  uint64_t group_cap_ = 0;
  bool poison_ = true;
  double ms_ = 0, device_ms_ = 0;
  int fwd_ = 0, bwd_ = 0;
  std::vector<std::string> kernels_;
  std::vector<PassStats> passes_;
  std::string current_;
  const char* op_ = "fwd";
};

}  // namespace orchard
