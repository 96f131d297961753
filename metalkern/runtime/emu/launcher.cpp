// launcher.cpp — the kernel registry, the shim's runtime entry points
// (barriers, simd exchange, threadgroup memory, errors) and Launcher.
#include "launcher.h"

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "fiber.h"
#include "group.h"
#include "mma.h"
#include "orchard_emu/matrix.h"
#include "pool.h"

namespace orchard_emu {

thread_local constinit ThreadCtx* tls_ctx = nullptr;

// ---- registry ----
namespace {
struct Registry {
  std::vector<const KernelEntry*> all;
  std::vector<std::string> problems;
};
Registry& reg() {
  static Registry r;  // filled by static initialisers of the generated files
  return r;
}
}  // namespace

void register_kernel(const KernelEntry& e) {
  Registry& r = reg();
  for (const KernelEntry* o : r.all)
    if (std::string_view(o->host_name) == e.host_name) {
      std::ostringstream m;
      m << "kernel '" << e.host_name << "' is defined twice: " << o->file << ':' << o->line << " and " << e.file
        << ':' << e.line;
      r.problems.push_back(m.str());
      return;
    }
  r.all.push_back(&e);
}

const std::vector<const KernelEntry*>& registry() { return reg().all; }
std::vector<std::string> registry_problems() { return reg().problems; }

const KernelEntry* find_kernel(std::string_view name) {
  for (const KernelEntry* e : reg().all)
    if (name == e->host_name) return e;
  return nullptr;
}

// ---- shim entry points ----
namespace {
Group& group_of(ThreadCtx& c) { return *static_cast<Group*>(c.group); }
Site site(const std::source_location& l, const char* op) { return Site{l.file_name(), l.line(), l.column(), op}; }
}  // namespace

void barrier_tg(const std::source_location& loc) {
  ThreadCtx& c = ctx();
  group_of(c).arrive_tg(c, site(loc, "threadgroup_barrier"));
}

void barrier_sg(const std::source_location& loc, const char* op) {
  ThreadCtx& c = ctx();
  group_of(c).arrive_sg(c, site(loc, op));
}

namespace {
// Gather A, B, C (row-major 8x8) from the lanes' slots with Apple's layout,
// the product, and each lane's two elements of D to bytes 24..31 of its slot.
inline void mma_exchange(const unsigned char* slots, unsigned char* out, bool halves) {
  alignas(16) std::uint16_t h[2][64];
  alignas(16) float m[3][64];
  for (unsigned l = 0; l < kSimdWidth; ++l) {
    const unsigned char* e = slots + l * kSlotBytes;
    unsigned at = kLaneAt.at[l];
    if (halves) {
      std::memcpy(&h[0][at], e, 4);
      std::memcpy(&h[1][at], e + 4, 4);
      std::memcpy(&m[2][at], e + 8, 8);
    } else {
      std::memcpy(&m[0][at], e, 8);
      std::memcpy(&m[1][at], e + 8, 8);
      std::memcpy(&m[2][at], e + 16, 8);
    }
  }
  if (halves) {
    widen_halves(h[0], m[0]);
    widen_halves(h[1], m[1]);
  }
  alignas(16) float d[64];
  mma_product(m[0], m[1], m[2], d);
  for (unsigned l = 0; l < kSimdWidth; ++l) std::memcpy(out + l * kSlotBytes, &d[kLaneAt.at[l]], 8);
}
}  // namespace

// The synchronous exchange (threads mode; fibers mode defers, group.cpp).
void mma_combine_f32(unsigned char* slots, unsigned width) {
  if (width != kSimdWidth) return;  // every lane reports it (see metal::detail::sg_mma)
  mma_exchange(slots, slots + 24, false);
}

void mma_combine_f16(unsigned char* slots, unsigned width) {
  if (width != kSimdWidth) return;
  mma_exchange(slots, slots + 24, true);
}

void* tg_alloc(const TgSite& s, std::size_t size, std::size_t align) { return group_of(ctx()).tg_alloc(s, size, align); }

void fail(const std::string& msg) {
  if (tls_ctx) throw KernelError(group_of(*tls_ctx).where() + ": " + msg);
  throw KernelError("emu: " + msg);
}

void fail_small_buffer(const Launch& l, int i, std::size_t need) {
  const KernelEntry* k = l.kernel;
  std::string param = "?";
  if (k)
    for (int p = 0; p < k->nparams; ++p)
      if (k->params[p].index == i && k->params[p].kind != ParamInfo::kBuiltin) param = k->params[p].name;
  std::ostringstream o;
  o << "kernel '" << (k ? k->host_name : "?") << "': [[buffer(" << i << ")]] '" << param << "' is bound to " << l.len[i]
    << " bytes but the parameter type needs " << need;
  throw KernelError(o.str());
}

// ---- Launcher ----
namespace {
// One process-wide pool for one set of options.
struct Slot {
  LaunchOptions opts;
  std::unique_ptr<Pool> pool;
  std::mutex run_mu;  // one dispatch at a time
};
struct Pools {
  std::mutex mu;             // guards slots; held across fork() by the atfork handlers
  std::vector<Slot*> slots;  // leaked on purpose: no static destructor joins a thread
};
bool same(const LaunchOptions& a, const LaunchOptions& b) {
  return a.threads == b.threads && a.workers == b.workers && a.stack_bytes == b.stack_bytes &&
         a.watchdog_seconds == b.watchdog_seconds;
}
Pools& pools();
// fork(): the lock of the pool table and of the fiber regions are held
// across it (never for long: no dispatch runs under them), so the child gets
// them free. The child has none of the pools' threads: it leaks every pool
// (and its slot, whose run lock a parent thread may hold mid-dispatch) and
// starts afresh. The parent is unaffected.
void atfork_prepare() {
  pools().mu.lock();
  fiber_regions_lock();
}
void atfork_parent() {
  fiber_regions_unlock();
  pools().mu.unlock();
}
void atfork_child() {
  Pools& p = pools();
  for (Slot* s : p.slots) (void)s->pool.release();
  p.slots.clear();
  fiber_regions_forget();
  fiber_regions_unlock();
  p.mu.unlock();
}
Pools& pools() {
  static Pools* p = [] {
    auto* q = new Pools;
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    return q;
  }();
  return *p;
}
Slot* acquire(const LaunchOptions& o) {
  Pools& p = pools();
  std::lock_guard<std::mutex> g(p.mu);
  for (Slot* s : p.slots)
    if (same(s->opts, o)) return s;
  auto s = std::make_unique<Slot>();
  s->opts = o;
  s->pool = o.threads ? make_thread_pool(o) : make_fiber_pool(o);
  p.slots.push_back(s.get());
  return s.release();
}
}  // namespace

void register_fork_handlers() { (void)pools(); }

Launcher::Launcher(const LaunchOptions& o) : opts_(o) {
  static const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (!opts_.workers) opts_.workers = cores;
}

Launcher::~Launcher() = default;

void Launcher::check_shape(const KernelEntry& k, metal::uint3 groups, metal::uint3 tpg) {
  auto shape = [](metal::uint3 v) {
    return std::to_string(v.x) + "x" + std::to_string(v.y) + "x" + std::to_string(v.z);
  };
  std::string name = std::string("kernel '") + k.host_name + "'";
  if (!groups.x || !groups.y || !groups.z) throw std::runtime_error(name + ": empty grid " + shape(groups));
  if (!tpg.x || !tpg.y || !tpg.z) throw std::runtime_error(name + ": empty threadgroup " + shape(tpg));
  unsigned long long n = 1ull * tpg.x * tpg.y * tpg.z;
  if (n > kMaxThreads)
    throw std::runtime_error(name + ": " + std::to_string(n) + " threads per threadgroup (" + shape(tpg) +
                             "), the limit is " + std::to_string(kMaxThreads));
  if (k.max_threads > 0 && n > (unsigned long long)k.max_threads)
    throw std::runtime_error(name + ": " + std::to_string(n) + " threads per threadgroup (" + shape(tpg) +
                             "), but its [[max_total_threads_per_threadgroup(" + std::to_string(k.max_threads) +
                             ")]] allows at most " + std::to_string(k.max_threads) +
                             " (Metal caps the pipeline's maxTotalThreadsPerThreadgroup there)");
}

void Launcher::dispatch(const KernelEntry& k, metal::uint3 groups, metal::uint3 tpg, const Launch& l) const {
  check_shape(k, groups, tpg);
  // A pool a watchdog timeout left with running threads stays in the table
  // and refuses every later dispatch (Pool::run): its stuck threads may
  // still write to the hung dispatch's buffers, so the process must restart.
  Slot* s = acquire(opts_);
  std::lock_guard<std::mutex> run(s->run_mu);
  s->pool->run(k, l, groups, tpg);
}

void Launcher::warm(metal::uint3 groups, metal::uint3 tpg) const {
  const unsigned long long n = 1ull * tpg.x * tpg.y * tpg.z;
  const unsigned long long g = 1ull * groups.x * groups.y * groups.z;
  if (!n || n > kMaxThreads || !g) return;  // dispatch reports the bad shape
  Slot* s = acquire(opts_);
  std::lock_guard<std::mutex> run(s->run_mu);
  if (!s->pool->poisoned()) s->pool->warm(g, unsigned(n));
}

}  // namespace orchard_emu
