// group.cpp — barrier/exchange state machine, divergence reports and the
// threadgroup arena of one emulated threadgroup (see group.h).
#include "group.h"

#include <cstring>
#include <sstream>

#include "mma.h"

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

// The storage of a simdgroup's deferred matrix ops (fibers mode): records
// in flight, results kept, and for error messages where each result came from.
struct Group::MmaStore {
  MmaSlot rec[kMmaWindow];
  alignas(64) float res[kMmaResults][64];
  std::source_location res_loc[kMmaResults];
  const char* res_op[kMmaResults];
};

Group::Group(Mode mode) : mode_(mode) {}
Group::~Group() = default;

void Group::configure(const KernelEntry* k, metal::uint3 tpg, metal::uint3 groups, Scheduler* s) {
  kernel_ = k;
  tpg_ = tpg;
  groups_ = groups;
  sched_ = s;
  size_for(tpg.x * tpg.y * tpg.z);
  for (unsigned i = 0; i < nsg_; ++i) {
    sgs_[i].first = i * kSimdWidth;
    sgs_[i].size = std::min(kSimdWidth, n_ - i * kSimdWidth);
    sgs_[i].full = sgs_[i].size == 32 ? ~0u : (1u << sgs_[i].size) - 1;
  }
  tg_used_ = kTgLimit;  // the first group of the dispatch poisons the whole arena
}

void Group::size_for(unsigned n) {
  if (n == n_) return;  // the simdgroups (and their storage) are kept while the group size stays
  nsg_ = (n + kSimdWidth - 1) / kSimdWidth;
  sgs_.reset(new Simd[nsg_]);
  n_ = n;
}

void Group::alloc_store(Simd& sg, bool touch_pages) {
  sg.store.reset(new MmaStore);  // default-initialised
  if (touch_pages) {
    std::memset(static_cast<void*>(sg.store.get()), 0, sizeof(MmaStore));  // every page; arrived = 0
  } else {
    for (MmaRec& r : sg.store->rec) r.arrived = 0;  // pages touched as records are used
  }
  sg.mma.rec = sg.store->rec;
  sg.mma.res = sg.store->res;
}

void Group::reserve(unsigned n) {
  if (mode_ != Mode::kFibers || n == 0 || n > kMaxThreads) return;
  size_for(n);
  // Only full simdgroups: a smaller one fails at its first matrix op
  // (mma_enter, before any allocation), as without this.
  for (unsigned i = 0; (i + 1) * kSimdWidth <= n; ++i) {
    if (!sgs_[i].store) alloc_store(sgs_[i], true);
  }
}

void Group::begin(metal::uint3 pos, ThreadCtx* ctx) {
  pos_ = pos;
  aborted_.store(false);
  tg_arrived_ = done_ = 0;
  for (unsigned i = 0; i < nsg_; ++i) {
    Simd& sg = sgs_[i];
    sg.wait = sg.tg = sg.done = 0;
    std::memset(sg.mma.ops, 0, sizeof sg.mma.ops);
    sg.mma.completed = sg.mwait = 0;
    sg.mma.limit = sg.store ? kMmaWindow : 0;  // 0: the first op allocates (mma_enter)
    if (sg.store)
      for (MmaRec& r : sg.store->rec) r.arrived = 0;
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
    c.mma = mode_ == Mode::kFibers ? &sgs_[t / kSimdWidth].mma : nullptr;
    c.mma_at = kLaneAt.at[t % kSimdWidth];
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
  if (sg.mwait & bit) return kWaitMma;
  if (sg.tg & bit) return kWaitTg;
  if (sg.done & bit) return kDone;
  return kRunning;
}

std::string Group::threads_where(St st, const Simd* sg, uint32_t only) const {
  unsigned lo = sg ? sg->first : 0, hi = sg ? sg->first + sg->size : n_;
  if (st == kWaitMma) return sg ? mma_waiters(*sg, sg->mwait & only) : "";
  std::vector<std::pair<Site, std::vector<unsigned>>> by;
  for (unsigned t = lo; t < hi; ++t) {
    if (state(t) != st || (sg && !(only >> (t - lo) & 1u))) continue;
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
  if (mode_ == Mode::kFibers) {
    const uint32_t ops = sg.mma.ops[c.thread_index_in_simdgroup];
    if ((sg.tg && ops != sg.tg_ops) || sg.mwait) [[unlikely]]
      check_ops(c, sg, 1, &s);
    sg.tg_ops = ops;  // the count of the simdgroup's lanes at the barrier (all equal, checked)
  }
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
  if ((sg.wait && sg.mma.ops[c.thread_index_in_simdgroup] != sg.site_ops) || sg.mwait) [[unlikely]]
    check_ops(c, sg, 0, &s);
  sg.site_ops = sg.mma.ops[c.thread_index_in_simdgroup];
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

// ---- deferred matrix products (fibers mode) ----

namespace {
inline Site loc_site(const std::source_location& l, const char* op) {
  return Site{l.file_name(), l.line(), l.column(), op};
}
std::string lanes_str(uint32_t mask) {
  std::vector<unsigned> v;
  for (unsigned l = 0; l < kSimdWidth; ++l)
    if (mask >> l & 1u) v.push_back(l);
  return std::string(v.size() == 1 ? "lane " : "lanes ") + ranges(v);
}
}  // namespace

std::string Group::op_name(const Simd& sg, uint32_t n) const {
  const MmaStore& st = *sg.store;
  const Site s = n < sg.mma.completed ? loc_site(st.res_loc[n % kMmaResults], st.res_op[n % kMmaResults])
                                      : loc_site(st.rec[n % kMmaWindow].loc, st.rec[n % kMmaWindow].op);
  return "matrix op #" + std::to_string(n) + " (" + describe(s) + ")";
}

std::string Group::mma_waiters(const Simd& sg, uint32_t lanes) const {
  std::string out;
  while (lanes) {
    const uint32_t op = sg.wait_op[__builtin_ctz(lanes)];
    uint32_t same = 0;
    for (uint32_t m = lanes; m; m &= m - 1)
      if (sg.wait_op[__builtin_ctz(m)] == op) same |= 1u << __builtin_ctz(m);
    lanes &= ~same;
    if (!out.empty()) out += "; ";
    out += lanes_str(same) + (__builtin_popcount(same) == 1 ? " waits" : " wait") + " for the result of " +
           op_name(sg, op);
  }
  return out;
}

void Group::diverge_ops(ThreadCtx& c, Simd& sg, const std::string& head, uint32_t others, uint32_t their_ops) {
  const uint32_t mine = sg.mma.ops[c.thread_index_in_simdgroup];
  const uint32_t first = std::min(mine, their_ops);  // the first op only one side did
  diverge(head + " after " + std::to_string(mine) + " matrix ops while " + lanes_str(others) + " did " +
          std::to_string(their_ops) + " (" + op_name(sg, first) + " is the first that only " +
          (mine > their_ops ? "lane " + std::to_string(c.thread_index_in_simdgroup) : lanes_str(others)) +
          " did)" + kSgFix);
}

// Lane c reaches an exchange (what 0, at *s), the threadgroup barrier (1,
// at *s) or its return (2) after sg.mma.ops[lane] matrix ops: the other
// lanes there must have done as many, and no lane may wait for an op this
// lane has not done (it would wait forever).
void Group::check_ops(ThreadCtx& c, Simd& sg, int what, const Site* s) {
  const unsigned lane = c.thread_index_in_simdgroup;
  const uint32_t bit = 1u << lane, mine = sg.mma.ops[lane];
  const uint32_t others = (what == 0 ? sg.wait : what == 1 ? sg.tg : sg.done) & ~bit;
  uint32_t& ref = what == 0 ? sg.site_ops : what == 1 ? sg.tg_ops : sg.done_ops;
  auto head = [&] {
    std::string h = "divergent " +
                    std::string(what == 1 ? "threadgroup_barrier"
                                          : what == 2 ? "simdgroup matrix ops" : (s->op ? s->op : "simd op")) +
                    " in simdgroup " + std::to_string(c.simdgroup_index_in_threadgroup) + ": lane " +
                    std::to_string(lane);
    return h + (s ? " reached " + describe(*s) : std::string(" returned"));
  };
  if (others && mine != ref) diverge_ops(c, sg, head(), others, ref);
  if (!others) ref = mine;
  uint32_t blocked = 0;
  for (uint32_t m = sg.mwait; m; m &= m - 1)
    if (sg.wait_op[__builtin_ctz(m)] >= mine) blocked |= 1u << __builtin_ctz(m);
  if (blocked)
    diverge(head() + " after " + std::to_string(mine) + " matrix ops while " + mma_waiters(sg, blocked) +
            ", which lane " + std::to_string(lane) + " has not done" + kSgFix);
}

// Blocks lane c until matrix op `op` of its simdgroup is complete (to read
// its result, or with start != ~0u to start op `start`, kMmaWindow later);
// first checks that every lane that has not done it yet can still get there.
void Group::mma_wait(ThreadCtx& c, Simd& sg, uint32_t op, uint32_t start) {
  const unsigned lane = c.thread_index_in_simdgroup;
  uint32_t stuck = 0;
  if (const uint32_t elsewhere = sg.done | sg.tg | sg.wait)
    for (uint32_t m = elsewhere; m; m &= m - 1)
      if (sg.mma.ops[__builtin_ctz(m)] <= op) stuck |= 1u << __builtin_ctz(m);  // has not done op
  if (stuck) [[unlikely]] {
    std::string where;
    for (St st : {kWaitSg, kWaitTg, kDone}) {
      std::string w = threads_where(st, &sg, stuck);
      if (w.empty()) continue;
      if (!where.empty()) where += "; ";
      where += w;
    }
    diverge("divergent " + std::string(sg.store->rec[op % kMmaWindow].op) + " in simdgroup " +
            std::to_string(c.simdgroup_index_in_threadgroup) + ": lane " + std::to_string(lane) + " " +
            (start == ~0u ? std::string("waits for the result of its ")
                          : "waits to start matrix op #" + std::to_string(start) + " (at most " +
                                std::to_string(kMmaWindow) + " in flight) until the end of ") +
            op_name(sg, op) + ", which " + lanes_str(stuck) + (__builtin_popcount(stuck) == 1 ? " has" : " have") +
            " not done: " + where + kSgFix);
  }
  if (!sg.mwait || op < sg.wake_at) sg.wake_at = op;
  sg.wait_op[lane] = op;
  sg.mwait |= 1u << lane;
  sched_->block(c.thread_index_in_threadgroup);
}

void Group::mma_wake(Simd& sg, uint32_t n) {
  uint32_t go = 0, keep = 0, next = ~0u;
  for (uint32_t m = sg.mwait; m; m &= m - 1) {
    const unsigned l = unsigned(__builtin_ctz(m));
    if (sg.wait_op[l] <= n) {
      go |= 1u << l;
    } else {
      keep |= 1u << l;
      next = std::min(next, sg.wait_op[l]);
    }
  }
  sg.mwait = keep;
  sg.wake_at = next;
  sched_->runnable[sg.first / 64] |= uint64_t(go) << (sg.first % 64);
  progress.fetch_add(1, std::memory_order_relaxed);  // a lane 64 ops ahead waits and wakes: no false watchdog
}

// Before op n = ops[lane] when n >= limit: the 32-lane rule, the first
// allocation, the handle limit, and the flow control (op n needs the record
// of op n - kMmaWindow).
void Group::mma_enter(ThreadCtx& c, const char* op) {
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  const uint32_t n = sg.mma.ops[c.thread_index_in_simdgroup];
  if (sg.size != kSimdWidth) fail(std::string(op) + " in a simdgroup with fewer than 32 threads");
  if (!sg.store) alloc_store(sg, false);  // not warmed (Group::reserve)
  if (n >= kMaxMmaOps)
    fail("more than " + std::to_string(kMaxMmaOps) + " matrix ops in simdgroup " +
         std::to_string(c.simdgroup_index_in_threadgroup) +
         " of one threadgroup: the limit of fibers mode's deferred products (ORCHARD_EMU_MODE=threads has none)");
  if (n - sg.mma.completed >= kMmaWindow) mma_wait(c, sg, n - kMmaWindow, n);
  sg.mma.limit = std::min(sg.mma.completed + kMmaWindow, kMaxMmaOps);
}

// Lane c's op #n is at another call site (or with other operand types) than
// the other lanes' op #n: divergence, unless only the function differs (a
// template instantiated twice whose instances share a source line).
void Group::mma_site(ThreadCtx& c, const std::source_location& loc, const char* op, unsigned kind) {
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  const uint32_t n = sg.mma.ops[c.thread_index_in_simdgroup];
  const MmaRec& r = sg.store->rec[n % kMmaWindow];
  const Site mine = loc_site(loc, op), theirs = loc_site(r.loc, r.op);
  if (r.kind == kind && same_site(mine, theirs)) return;
  uint32_t did = 0;
  for (unsigned l = 0; l < sg.size; ++l)
    if (sg.mma.ops[l] > n) did |= 1u << l;
  diverge("divergent " + std::string(op) + " in simdgroup " + std::to_string(c.simdgroup_index_in_threadgroup) +
          ": lane " + std::to_string(c.thread_index_in_simdgroup) + " reached " + describe(mine) +
          " as its matrix op #" + std::to_string(n) + " while " + lanes_str(did) + " did matrix op #" +
          std::to_string(n) + " at " + describe(theirs) + (r.kind != kind ? " (other operand types)" : "") + kSgFix);
}

// A handle that is not one of the lane's own results, or is too old (used
// at op `use`, or read when use is ~0u).
void Group::mma_bad_handle(ThreadCtx& c, uint32_t h, uint32_t use) {
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  const unsigned lane = c.thread_index_in_simdgroup;
  const uint32_t j = (h >> 5) - 1, n = sg.mma.ops[lane];
  const std::string who =
      "lane " + std::to_string(lane) + " of simdgroup " + std::to_string(c.simdgroup_index_in_threadgroup);
  if (!c.mma || (h & 31u) != lane || j >= n || !sg.store)
    fail("a pending simdgroup_matrix result reached " + who +
         " from another lane or threadgroup (copied through memory?): fibers mode cannot resolve it");
  const MmaStore& st = *sg.store;
  fail(who + (use == ~0u ? " reads" : " uses") + " the result of its matrix op #" + std::to_string(j) + " (" +
       describe(loc_site(st.res_loc[j % kMmaResults], st.res_op[j % kMmaResults])) + ")" +
       (use == ~0u ? "" : " as the C operand of its matrix op #" + std::to_string(use)) + " after " +
       std::to_string(n - j - 1) + " more matrix ops: fibers mode defers simdgroup matrix products and keeps " +
       "the results of each lane's last " + std::to_string(kMmaResults - 1) +
       " matrix ops (kMmaResults - 1, orchard_emu/context.h); read the result sooner (thread_elements, simdgroup_store), "
       "or run with ORCHARD_EMU_MODE=threads (products computed at once)");
}

// The last lane deposited op n: its pending C elements are copied from their
// results (complete, and still kept: see kMmaResults), then the product is
// computed once, into the result ring, and waiters for op n wake up.
void Group::mma_complete(ThreadCtx& c, uint32_t n) {
  Simd& sg = sgs_[c.simdgroup_index_in_threadgroup];
  MmaStore& st = *sg.store;
  MmaRec& r = st.rec[n % kMmaWindow];
  r.arrived = 0;
  const float* c_in = r.c;
  uint32_t any = 0, diff = 0;  // some lane's C is pending; lanes' C differ from lane 0's
  for (unsigned l = 0; l < kSimdWidth; ++l) {
    any |= r.cj[l];
    diff |= r.cj[l] ^ r.cj[0];
  }
  if (any) {
    const bool h = r.kind & kMmaHalfC;
    if (!diff) {  // the usual accumulator chain: every lane's C is one earlier result
      const float* src = st.res[(r.cj[0] - 1) % kMmaResults];
      if (h)
        for (int i = 0; i < 64; ++i) r.c[i] = through_half(src[i]);
      else
        c_in = src;
    } else {
      for (unsigned l = 0; l < kSimdWidth; ++l) {
        if (!r.cj[l]) continue;
        const unsigned at = kLaneAt.at[l];
        const float* src = st.res[(r.cj[l] - 1) % kMmaResults] + at;
        r.c[at] = h ? through_half(src[0]) : src[0];
        r.c[at + 1] = h ? through_half(src[1]) : src[1];
      }
    }
  }
  float* d = st.res[n % kMmaResults];
  if (r.kind & kMmaHalfAB) {
    alignas(16) float a[64], b[64];
    widen_halves(reinterpret_cast<const std::uint16_t*>(r.ab), a);
    widen_halves(reinterpret_cast<const std::uint16_t*>(r.ab + 128), b);
    mma_product(a, b, c_in, d);
  } else {
    mma_product(reinterpret_cast<const float*>(r.ab), reinterpret_cast<const float*>(r.ab + 256), c_in, d);
  }
  st.res_loc[n % kMmaResults] = r.loc;
  st.res_op[n % kMmaResults] = r.op;
  sg.mma.completed = n + 1;
  sg.mma.limit = std::min(n + 1 + kMmaWindow, kMaxMmaOps);
  if (sg.mwait && n >= sg.wake_at) mma_wake(sg, n);
}

void Group::mma_wait_result(ThreadCtx& c, uint32_t j) {
  mma_wait(c, sgs_[c.simdgroup_index_in_threadgroup], j, ~0u);
}

// The shim's out-of-line entry points (context.h).
void mma_enter(ThreadCtx& c, const char* op) { static_cast<Group*>(c.group)->mma_enter(c, op); }
void mma_site(ThreadCtx& c, const std::source_location& loc, const char* op, unsigned kind) {
  static_cast<Group*>(c.group)->mma_site(c, loc, op, kind);
}
void mma_bad_handle(ThreadCtx& c, std::uint32_t h, std::uint32_t use) {
  static_cast<Group*>(c.group)->mma_bad_handle(c, h, use);
}
void mma_complete(ThreadCtx& c, std::uint32_t n) { static_cast<Group*>(c.group)->mma_complete(c, n); }
void mma_wait_result(ThreadCtx& c, std::uint32_t j) { static_cast<Group*>(c.group)->mma_wait_result(c, j); }

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
  if (mode_ == Mode::kFibers) check_ops(c, sg, 2, nullptr);
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
    s = threads_where(kWaitMma, &sgs_[i]);
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
