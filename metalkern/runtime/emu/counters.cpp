// counters.cpp — the counting build's per-OS-thread blocks (orchard_emu/
// context.h WorkBlock) and take_work_counters(). Compiled to nothing unless
// ORCHARD_EMU_COUNTERS is defined (orchard-runner-emu-counters).
#ifdef ORCHARD_EMU_COUNTERS

#include <algorithm>
#include <mutex>

#include "orchard_emu/context.h"
#include "orchard_emu/counters_api.h"

namespace orchard_emu {

thread_local constinit WorkBlock* tls_work = nullptr;

namespace {
std::mutex work_mu;
WorkBlock* work_all = nullptr;  // every block ever registered (threads are reused; blocks never freed)

// Thread 0 of the group running now: a new group folds the last one's figures.
WorkBlock& group_block() {
  WorkBlock& w = work();
  const ThreadCtx& c = ctx();
  const metal::uint3 g = c.threadgroup_position_in_grid;
  if (!w.have_group || w.group.x != g.x || w.group.y != g.y || w.group.z != g.z) {
    w.max_barriers = std::max(w.max_barriers, w.group_barriers);
    w.max_tg_bytes = std::max(w.max_tg_bytes, w.group_tg_bytes);
    w.have_group = true;
    w.group = g;
    w.group_barriers = w.group_tg_bytes = 0;
    w.group_nsites = 0;
  }
  return w;
}
}  // namespace

WorkBlock* work_block_register() {
  auto* w = new WorkBlock;
  std::lock_guard<std::mutex> g(work_mu);
  w->next = work_all;
  work_all = w;
  tls_work = w;
  return w;
}

void count_barrier() {
  if (ctx().thread_index_in_threadgroup != 0) return;
  ++group_block().group_barriers;
}

void count_tg_decl(const TgSite& site, std::size_t bytes) {
  if (ctx().thread_index_in_threadgroup != 0) return;
  WorkBlock& w = group_block();
  for (unsigned i = 0; i < w.group_nsites; ++i)
    if (w.group_sites[i] == &site) return;  // a declaration in a loop: its storage once
  if (w.group_nsites < sizeof w.group_sites / sizeof w.group_sites[0]) w.group_sites[w.group_nsites++] = &site;
  w.group_tg_bytes += bytes;
}

WorkCounters take_work_counters() {
  WorkCounters out;
  std::lock_guard<std::mutex> g(work_mu);
  for (WorkBlock* w = work_all; w; w = w->next) {
    out.simdgroup_mma += w->mma;
    out.threadgroup_traffic_bytes += w->tg_traffic;
    out.device_bytes += w->device;
    out.barriers = std::max({out.barriers, w->max_barriers, w->group_barriers});
    out.threadgroup_bytes = std::max({out.threadgroup_bytes, w->max_tg_bytes, w->group_tg_bytes});
    WorkBlock* next = w->next;
    *w = WorkBlock{};
    w->next = next;
  }
  return out;
}

}  // namespace orchard_emu

#endif  // ORCHARD_EMU_COUNTERS
