// attn_plain.h — the plain-attention baseline of the runner (run --baseline plain).
//
// Runs kernels/attn_plain.metal (S materialised in device memory, softmax,
// O = P V; the textbook backward from the stored P) on the same inputs as the
// flash kernels, writes the same output files and prints run's JSON line with
// "baseline":"plain". `orchard bench` times it against the flash kernels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend.h"
#include "npy.h"
#include "orchard/params.h"
#include "runlog.h"
#include "select.h"

namespace orchard {

// Every kernel the plain baseline may dispatch (both dtypes).
std::vector<std::string> plain_kernel_names();

// Why the plain baseline cannot run this shape ("" when it can): its float32
// S and dS scratch buffers of B*H*Nq*Nk elements must fit 32-bit indexing.
std::string plain_refusal(const AttnShape& shape);

struct PlainInputs {
  const NpyArray* q = nullptr;
  const NpyArray* k = nullptr;
  const NpyArray* v = nullptr;
  const NpyArray* dout = nullptr;  // null: forward only
};

// Runs the baseline: the forward, then with in.dout the backward; writes
// o.npy, lse.npy (dq.npy, dk.npy, dv.npy) to out_dir and prints one JSON
// line. group_cap > 0 caps the threadgroups per dispatch (as for the flash
// kernels). Logs as the flash path does (FWD/BWD, ALLOC, an ERROR line on
// failure). Throws std::runtime_error on a runtime failure.
void run_plain(Backend& be, RunLog& log, const AttnShape& shape, const AttnParams& prm,
               Storage storage, size_t offset, uint64_t group_cap, const PlainInputs& in,
               const std::string& out_dir);

}  // namespace orchard
