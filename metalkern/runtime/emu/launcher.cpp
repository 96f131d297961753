// launcher.cpp — the kernel registry, the shim's runtime entry points
// (barriers, simd exchange, threadgroup memory, errors) and Launcher.
#include "launcher.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "group.h"
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

Xchg exchange(const void* mine, std::size_t n, const std::source_location& loc, const char* op, Combine combine) {
  ThreadCtx& c = ctx();
  return group_of(c).exchange(c, mine, n, site(loc, op), combine);
}

void mma_combine_f32(unsigned char* slots, unsigned width) {
  if (width != kSimdWidth) return;  // every lane reports it (see metal::detail::sg_mma)
  // Gather A, B, C (row-major 8x8) from the lanes' slots with Apple's layout.
  float m[3][64];
  for (unsigned l = 0; l < kSimdWidth; ++l) {
    float e[6];
    std::memcpy(e, slots + l * kSlotBytes, sizeof e);
    int at = metal::detail::sg_row(l) * 8 + metal::detail::sg_col(l);
    for (int w = 0; w < 3; ++w) {
      m[w][at] = e[2 * w];
      m[w][at + 1] = e[2 * w + 1];
    }
  }
  // D(r, c) = C(r, c) + A(r, 0) B(0, c) + ... + A(r, 7) B(7, c), in that order.
  float d[64];
  for (int r = 0; r < 8; ++r) {
    float acc[8];
    for (int c = 0; c < 8; ++c) acc[c] = m[2][r * 8 + c];
    for (int k = 0; k < 8; ++k) {
      float a = m[0][r * 8 + k];
      for (int c = 0; c < 8; ++c) acc[c] += a * m[1][k * 8 + c];
    }
    for (int c = 0; c < 8; ++c) d[r * 8 + c] = acc[c];
  }
  for (unsigned l = 0; l < kSimdWidth; ++l)
    std::memcpy(slots + l * kSlotBytes + 6 * sizeof(float),
                d + metal::detail::sg_row(l) * 8 + metal::detail::sg_col(l), 2 * sizeof(float));
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
Launcher::Launcher(const LaunchOptions& o) : opts_(o) {
  if (!opts_.workers) opts_.workers = std::max(1u, std::thread::hardware_concurrency());
  pool_ = opts_.threads ? make_thread_pool(opts_) : make_fiber_pool(opts_);
}

Launcher::~Launcher() {
  if (pool_ && pool_->poisoned()) (void)pool_.release();  // stuck threads still use it
}

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
}

void Launcher::dispatch(const KernelEntry& k, metal::uint3 groups, metal::uint3 tpg, const Launch& l) {
  check_shape(k, groups, tpg);
  pool_->run(k, l, groups, tpg);
}

}  // namespace orchard_emu
