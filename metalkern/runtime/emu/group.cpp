// group.cpp — barrier/exchange state machine, divergence reports and the
// threadgroup arena of one emulated threadgroup (see group.h).
#include "group.h"

#include <cstring>
#include <sstream>

namespace orchard_emu {

namespace {
const char* base_name(const char* path) {
  if (!path) return "?";
  const char* b = std::strrchr(path, '/');
  return b ? b + 1 : path;
}
bool same_site(const Site& a, const Site& b) {
  return a.line == b.line && a.col == b.col &&
         (a.file == b.file || (a.file && b.file && std::strcmp(a.file, b.file) == 0));
}
}  // namespace

std::string describe(const Site& s) {
  std::ostringstream o;
  o << base_name(s.file) << ':' << s.line << ':' << s.col << " (" << (s.op ? s.op : "?") << ')';
  return o.str();
}

std::string ranges(const std::vector<unsigned>& ids) {
  std::ostringstream o;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (i) o << ", ";
    o << ids[i];
    if (j > i) o << '-' << ids[j];
    i = j + 1;
  }
  return o.str();
}

// Holds the group mutex in threads mode; a no-op for fibers.
class Group::Lock {
 public:
  explicit Lock(Group& g) : lk(g.mu_, std::defer_lock) {
    if (g.mode_ == Mode::kThreads) {
      lk.lock();
      if (g.aborted_) throw Aborted{};
    }
  }
  std::unique_lock<std::mutex> lk;
};

Group::Group(Mode mode) : mode_(mode) {}
Group::~Group() = default;

void Group::configure(const KernelEntry* k, metal::uint3 tpg, metal::uint3 groups, Scheduler* s) {
  kernel_ = k;
  tpg_ = tpg;
  groups_ = groups;
  sched_ = s;
  unsigned n = tpg.x * tpg.y * tpg.z;
  unsigned nsg = (n + kSimdWidth - 1) / kSimdWidth;
  if (n != n_) {
    sgs_.reset(new Simd[nsg]);
    n_ = n;
    nsg_ = nsg;
  }
  for (unsigned i = 0; i < nsg_; ++i) {
    sgs_[i].first = i * kSimdWidth;
    sgs_[i].size = std::min(kSimdWidth, n_ - i * kSimdWidth);
    sgs_[i].full = sgs_[i].size == 32 ? ~0u : (1u << sgs_[i].size) - 1;
  }
  tg_used_ = kTgLimit;  // the first group of the dispatch poisons the whole arena
}

void Group::begin(metal::uint3 pos, ThreadCtx* ctx) {
  pos_ = pos;
  aborted_.store(false);
  tg_arrived_ = done_ = 0;
  for (unsigned i = 0; i < nsg_; ++i) {
    Simd& sg = sgs_[i];
    sg.wait = sg.tg = sg.done = 0;
  }
  // Threadgroup memory is uninitialised on the GPU: poison what the last
  // group used (0xFF bytes: NaN floats, -1 integers) so stale reads show.
  std::memset(arena_, 0xFF, tg_used_);
  tg_used_ = 0;
  tg_count_.store(0, std::memory_order_relaxed);
  for (unsigned t = 0; t < n_; ++t) {
    ThreadCtx& c = ctx[t];
    metal::uint3 local(t % tpg_.x, (t / tpg_.x) % tpg_.y, t / (tpg_.x * tpg_.y));
    c.thread_position_in_threadgroup = local;
    c.threadgroup_position_in_grid = pos;
    c.thread_position_in_grid = pos * tpg_ + local;
    c.threads_per_threadgroup = tpg_;
    c.threadgroups_per_grid = groups_;
    c.threads_per_grid = groups_ * tpg_;
    c.thread_index_in_threadgroup = t;
    c.simdgroup_index_in_threadgroup = t / kSimdWidth;
    c.thread_index_in_simdgroup = t % kSimdWidth;
    c.simdgroups_per_threadgroup = nsg_;
    c.threads_per_simdgroup = kSimdWidth;
    c.group = this;
    c.xchg = 0;
    for (unsigned b = 0; b < 2; ++b) c.slot[b] = sgs_[t / kSimdWidth].slots[b][t % kSimdWidth];
  }
}

std::string Group::where() const {
  std::ostringstream o;
  o << "kernel '" << (kernel_ ? kernel_->host_name : "?") << "', threadgroup (" << pos_.x << ',' << pos_.y << ','
    << pos_.z << ')';
  return o.str();
}

// "lanes 0-15 wait at f.metal:3:9 (simd_sum); lane 16 has returned": the
// threads (of `sg`, or of the group when sg is null) in state st, by site.
Group::St Group::state(unsigned t) const {
  const Simd& sg = sgs_[t / kSimdWidth];
  uint32_t bit = 1u << (t % kSimdWidth);
  if (sg.wait & bit) return kWaitSg;
  if (sg.tg & bit) return kWaitTg;
  if (sg.done & bit) return kDone;
  return kRunning;
}

std::string Group::threads_where(St st, const Simd* sg) const {
  unsigned lo = sg ? sg->first : 0, hi = sg ? sg->first + sg->size : n_;
  std::vector<std::pair<Site, std::vector<unsigned>>> by;
  for (unsigned t = lo; t < hi; ++t) {
    if (state(t) != st) continue;
    // every waiter at a simd op waits at its simdgroup's site (checked on
    // arrival), every waiter at the barrier at tg_site_
    Site site = st == kWaitSg ? sgs_[t / kSimdWidth].site : st == kWaitTg ? tg_site_ : Site{};
    unsigned id = sg ? t - sg->first : t;
    bool found = false;
    for (auto& [s, ids] : by)
      if (same_site(s, site)) {
        ids.push_back(id);
        found = true;
        break;
      }
    if (!found) by.push_back({site, {id}});
  }
  std::string out;
  for (auto& [s, ids] : by) {
    bool one = ids.size() == 1;
    if (!out.empty()) out += "; ";
    out += std::string(sg ? (one ? "lane " : "lanes ") : (one ? "thread " : "threads ")) + ranges(ids);
    if (st == kDone) out += one ? " has returned" : " have returned";
    else out += (one ? " waits at " : " wait at ") + describe(s);
  }
  return out;
}

namespace {
const char* kTgFix = "; every thread of a threadgroup must reach the same threadgroup_barrier calls "
                     "(no early return or divergent branch around them)";
const char* kSgFix = "; every lane of a simdgroup must reach the same simd_*/simdgroup_* calls "
                     "(Apple GPUs may tolerate divergence there, emu does not)";
}  // namespace

void Group::diverge(const std::string& what) {
  throw KernelError(where() + ": " + what);
}

void Group::arrive_tg(ThreadCtx& c, const Site& s) {
  Lock lk(*this);
  unsigned t = c.thread_index_in_threadgroup;
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  if (done_ > 0 || sg.wait || (tg_arrived_ > 0 && !same_site(tg_site_, s))) [[unlikely]] {
    std::string me = "divergent threadgroup_barrier: thread " + std::to_string(t) + " reached " + describe(s);
    if (done_ > 0) diverge(me + " but " + threads_where(kDone, nullptr) + kTgFix);
    if (sg.wait)
      diverge(me + " while, in its simdgroup " + std::to_string(c.simdgroup_index_in_threadgroup) + ", " +
              threads_where(kWaitSg, &sg) + kTgFix);
    diverge(me + " but " + threads_where(kWaitTg, nullptr) + kTgFix);
  }
  if (tg_arrived_ == 0) tg_site_ = s;
  sg.tg |= 1u << c.thread_index_in_simdgroup;
  if (++tg_arrived_ == n_) {
    release_tg(t);
    return;
  }
  wait(lk, t, tg_phase_);
}

void Group::diverge_sg(ThreadCtx& c, const Site& s) {
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  std::string head = "divergent " + std::string(s.op ? s.op : "simd op") + " in simdgroup " +
                     std::to_string(c.simdgroup_index_in_threadgroup) + ": lane " +
                     std::to_string(c.thread_index_in_simdgroup) + " reached " + describe(s);
  if (sg.done) diverge(head + " but " + threads_where(kDone, &sg) + kSgFix);
  if (sg.tg) diverge(head + " while " + threads_where(kWaitTg, &sg) + kSgFix);
  diverge(head + " while " + threads_where(kWaitSg, &sg) + kSgFix);
}

// Fibers mode (inlined into both callers): no lock; the release is one mask
// operation on the runnable set.
inline void Group::arrive_sg_fibers(ThreadCtx& c, Simd& sg, const Site& s, Combine combine, unsigned char* slots) {
  if ((sg.done | sg.tg) || (sg.wait && !same_site(sg.site, s))) [[unlikely]]
    diverge_sg(c, s);
  if (!sg.wait) sg.site = s;
  const uint32_t bit = 1u << c.thread_index_in_simdgroup;
  const uint32_t w = sg.wait | bit;
  if (w != sg.full) {
    sg.wait = w;
    sched_->block(c.thread_index_in_threadgroup);
    return;
  }
  sg.wait = 0;
  if (combine) combine(slots, sg.size);
  sched_->runnable[sg.first / 64] |= uint64_t(w & ~bit) << (sg.first % 64);
  progress.fetch_add(1, std::memory_order_relaxed);
}

void Group::arrive_sg(ThreadCtx& c, const Site& s, Combine combine, unsigned char* slots) {
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  if (mode_ == Mode::kFibers) {
    arrive_sg_fibers(c, sg, s, combine, slots);
    return;
  }
  Lock lk(*this);
  if ((sg.done | sg.tg) || (sg.wait && !same_site(sg.site, s))) [[unlikely]]
    diverge_sg(c, s);
  if (!sg.wait) sg.site = s;
  sg.wait |= 1u << c.thread_index_in_simdgroup;
  if (sg.wait == sg.full) {
    if (combine) combine(slots, sg.size);
    release_sg(sg, c.thread_index_in_threadgroup);
    return;
  }
  wait(lk, c.thread_index_in_threadgroup, sg.phase);
}

Xchg Group::arrive_xchg(ThreadCtx& c, const Site& s, Combine combine) {
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  unsigned char* base = &sg.slots[c.xchg++ & 1u][0][0];  // double buffering: one barrier per exchange suffices
  if (mode_ == Mode::kFibers) [[likely]]
    arrive_sg_fibers(c, sg, s, combine, base);
  else
    arrive_sg(c, s, combine, base);
  return Xchg{base, c.thread_index_in_simdgroup, sg.size};
}

// The shim's entry point for every simd exchange (context.h).
Xchg exchange_arrive(ThreadCtx& c, const std::source_location& loc, const char* op, Combine combine) {
  return static_cast<Group*>(c.group)->arrive_xchg(c, Site{loc.file_name(), loc.line(), loc.column(), op}, combine);
}

void Group::release_tg(unsigned me) {
  tg_arrived_ = 0;
  for (unsigned i = 0; i < nsg_; ++i) {
    Simd& sg = sgs_[i];
    if (mode_ == Mode::kFibers) {
      uint32_t w = sg.tg;
      if (me - sg.first < sg.size) w &= ~(1u << (me - sg.first));
      sched_->runnable[sg.first / 64] |= uint64_t(w) << (sg.first % 64);
    }
    sg.tg = 0;
  }
  progress.fetch_add(1, std::memory_order_relaxed);
  if (mode_ == Mode::kThreads) {
    tg_phase_.fetch_add(1, std::memory_order_release);
    tg_phase_.notify_all();
  }
}

void Group::release_sg(Simd& sg, unsigned me) {
  (void)me;
  sg.wait = 0;  // threads mode only (fibers release in arrive_sg)
  progress.fetch_add(1, std::memory_order_relaxed);
  if (mode_ == Mode::kThreads) {
    sg.phase.fetch_add(1, std::memory_order_release);
    sg.phase.notify_all();
  }
}

void Group::wait(Lock& lk, unsigned t, std::atomic<uint32_t>& phase) {
  if (mode_ == Mode::kFibers) {
    sched_->block(t);
    return;
  }
  // Threads: the phase cannot change before we unlock (the release needs
  // our arrival and the lock); then sleep on it without the lock.
  const uint32_t ph = phase.load(std::memory_order_relaxed);
  lk.lk.unlock();
  for (;;) {
    if (aborted_.load(std::memory_order_acquire)) throw Aborted{};
    if (phase.load(std::memory_order_acquire) != ph) return;
    phase.wait(ph, std::memory_order_acquire);
  }
}

void Group::thread_exit(ThreadCtx& c) {
  Lock lk(*this);
  unsigned t = c.thread_index_in_threadgroup;
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  sg.done |= 1u << c.thread_index_in_simdgroup;
  ++done_;
  progress.fetch_add(1, std::memory_order_relaxed);
  if (tg_arrived_ > 0)
    diverge("divergent threadgroup_barrier: thread " + std::to_string(t) + " returned while " +
            threads_where(kWaitTg, nullptr) + kTgFix);
  if (sg.wait)
    diverge("divergent " + std::string(sg.site.op ? sg.site.op : "simd op") + " in simdgroup " +
            std::to_string(c.simdgroup_index_in_threadgroup) + ": lane " + std::to_string(c.thread_index_in_simdgroup) +
            " returned while " + threads_where(kWaitSg, &sg) + kSgFix);
}

void Group::abort() {
  std::lock_guard<std::mutex> g(mu_);
  aborted_.store(true, std::memory_order_release);
  // Wake every sleeper; it sees aborted_ and throws Aborted.
  tg_phase_.fetch_add(1, std::memory_order_release);
  tg_phase_.notify_all();
  for (unsigned i = 0; i < nsg_; ++i) {
    sgs_[i].phase.fetch_add(1, std::memory_order_release);
    sgs_[i].phase.notify_all();
  }
}

std::string Group::state_summary() {
  std::unique_lock<std::mutex> lk(mu_, std::defer_lock);
  if (mode_ == Mode::kThreads) lk.lock();
  std::string out;
  auto add = [&](const std::string& s) {
    if (s.empty()) return;
    if (!out.empty()) out += "; ";
    out += s;
  };
  add(threads_where(kWaitTg, nullptr));
  for (unsigned i = 0; i < nsg_; ++i) {
    std::string s = threads_where(kWaitSg, &sgs_[i]);
    if (!s.empty()) add("simdgroup " + std::to_string(i) + " " + s);
  }
  std::vector<unsigned> running, done;
  for (unsigned t = 0; t < n_; ++t) {
    if (state(t) == kRunning) running.push_back(t);
    if (state(t) == kDone) done.push_back(t);
  }
  if (!running.empty()) add("threads " + ranges(running) + " still running");
  if (!done.empty()) add(threads_where(kDone, nullptr));
  return out;
}

void* Group::tg_alloc(const TgSite& site, std::size_t size, std::size_t align) {
  unsigned n = tg_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i)
    if (tg_tab_[i].site == &site) return arena_ + tg_tab_[i].off;
  Lock lk(*this);
  n = tg_count_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < n; ++i)
    if (tg_tab_[i].site == &site) return arena_ + tg_tab_[i].off;
  if (align < 16) align = 16;
  std::size_t off = (tg_used_ + align - 1) / align * align;
  if (off + size > kTgLimit || n == sizeof tg_tab_ / sizeof tg_tab_[0]) {
    std::ostringstream o;
    o << "kernel '" << (kernel_ ? kernel_->host_name : "?") << "' uses at least " << off + size
      << " bytes of threadgroup memory, the limit is " << kTgLimit << ": ";
    for (unsigned i = 0; i < n; ++i)
      o << tg_tab_[i].site->name << ' ' << tg_tab_[i].size << " B (" << base_name(tg_tab_[i].site->file) << ':'
        << tg_tab_[i].site->line << "), ";
    o << site.name << ' ' << size << " B (" << base_name(site.file) << ':' << site.line
      << "); shrink the tiles or reuse buffers";
    throw KernelError(o.str());
  }
  tg_tab_[n] = TgAlloc{&site, off, size};
  tg_used_ = off + size;
  tg_count_.store(n + 1, std::memory_order_release);
  return arena_ + off;
}

}  // namespace orchard_emu
