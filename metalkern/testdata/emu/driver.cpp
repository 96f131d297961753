// driver.cpp — a minimal stand-in for the runner's main, used by the Go
// tests of the emu backend (metalkern/emu_*_test.go). It drives
// orchard::Backend (backend.h) exactly as the runner does:
//
//   driver list
//   driver run --kernel NAME --grid X,Y,Z --tg X,Y,Z [--mode fibers|threads]
//              [--in I=FILE] [--out I=FILE:BYTES] [--u32 I=a,b,..] [--i32 I=a,b,..] [--repeat N]
//              [--storage shared|private] [--offset BYTES] [--read staged|direct]
//   driver stage --in FILE --out FILE [--storage shared|private] [--offset BYTES]
//
// --in binds the file's bytes at [[buffer(I)]], --out binds BYTES poisoned
// bytes (0xFF: NaN floats) and writes them to FILE afterwards, --u32/--i32
// bind small constant bytes. Buffers get --storage and --offset; they are
// written and read with upload()/download() (backend.h), or with
// --read direct the outputs are read through Buffer::data() (which a
// private buffer refuses). `stage` uploads FILE into a buffer, copies it
// into a second one with Backend::copy and downloads that into --out.
// Prints "ms=<per dispatch>" on success; on a kernel error prints
// "error: <message>" on stderr and exits 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.h"
#ifdef ORCHARD_EMU_COUNTERS
#include "orchard_emu/counters_api.h"
#endif

namespace {

orchard::Dim3 dim(const std::string& s) {
  orchard::Dim3 d;
  if (std::sscanf(s.c_str(), "%u,%u,%u", &d.x, &d.y, &d.z) != 3) throw std::invalid_argument("bad dims " + s);
  return d;
}

struct Out {
  int index;
  std::string path;
  size_t bytes;
};

int run(int argc, char** argv) {
  orchard::BackendOptions opts;
  std::string kernel;
  orchard::Dim3 grid, tg;
  int repeat = 1;
  orchard::Storage storage = orchard::Storage::kShared;
  size_t offset = 0;
  bool direct = false;
  std::vector<std::pair<int, std::string>> ins;
  std::vector<Out> outs;
  std::vector<std::pair<int, std::vector<unsigned char>>> raws;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    auto idx = [&] { return std::atoi(v.substr(0, v.find('=')).c_str()); };
    auto rest = [&] { return v.substr(v.find('=') + 1); };
    if (k == "--mode") opts.emu_mode = v;
    else if (k == "--storage") storage = v == "private" ? orchard::Storage::kPrivate : orchard::Storage::kShared;
    else if (k == "--offset") offset = std::stoul(v);
    else if (k == "--read") direct = v == "direct";
    else if (k == "--kernel") kernel = v;
    else if (k == "--grid") grid = dim(v);
    else if (k == "--tg") tg = dim(v);
    else if (k == "--repeat") repeat = std::atoi(v.c_str());
    else if (k == "--in") ins.push_back({idx(), rest()});
    else if (k == "--out") {
      std::string r = rest();
      outs.push_back({idx(), r.substr(0, r.rfind(':')), std::stoul(r.substr(r.rfind(':') + 1))});
    } else if (k == "--u32" || k == "--i32") {
      std::vector<unsigned char> bytes;
      std::string list = rest();
      for (size_t p = 0; !list.empty() && p <= list.size();) {  // "I=": 0 bytes
        size_t q = list.find(',', p);
        if (q == std::string::npos) q = list.size();
        long long n = std::stoll(list.substr(p, q - p));
        uint32_t w = uint32_t(n);
        bytes.insert(bytes.end(), reinterpret_cast<unsigned char*>(&w), reinterpret_cast<unsigned char*>(&w) + 4);
        p = q + 1;
      }
      raws.push_back({idx(), bytes});
    } else throw std::invalid_argument("unknown flag " + k);
  }
  auto be = orchard::make_backend(opts);
  std::vector<orchard::Buffer> keep;
  std::vector<orchard::Arg> args;
  keep.reserve(ins.size() + outs.size());
  for (auto& [i, path] : ins) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    keep.push_back(be->alloc(data.size(), path, storage, offset));
    orchard::upload(*be, keep.back(), data.data());
    args.push_back(orchard::Arg::buf(i, keep.back()));
  }
  for (auto& o : outs) {
    keep.push_back(be->alloc(o.bytes, o.path, storage, offset));
    orchard::upload(*be, keep.back(), std::vector<char>(o.bytes, char(0xFF)).data());
    args.push_back(orchard::Arg::buf(o.index, keep.back()));
  }
  for (auto& [i, bytes] : raws) args.push_back(orchard::Arg::raw(i, bytes.data(), bytes.size()));
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < repeat; ++r) be->dispatch(kernel, grid, tg, args);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / repeat;
  for (size_t j = 0; j < outs.size(); ++j) {
    const orchard::Buffer& b = keep[ins.size() + j];
    std::vector<char> host(b.bytes);
    if (direct) std::memcpy(host.data(), b.data(), b.bytes);
    else orchard::download(*be, b, host.data());
    std::ofstream f(outs[j].path, std::ios::binary);
    f.write(host.data(), std::streamsize(b.bytes));
  }
  std::printf("device=%s ms=%.3f\n", be->device().c_str(), ms);
#ifdef ORCHARD_EMU_COUNTERS
  orchard_emu::WorkCounters w = orchard_emu::take_work_counters();  // all the repeats
  std::printf("counters mma=%llu tg_bytes=%llu tg_traffic=%llu device=%llu barriers=%llu\n",
              (unsigned long long)w.simdgroup_mma, (unsigned long long)w.threadgroup_bytes,
              (unsigned long long)w.threadgroup_traffic_bytes, (unsigned long long)w.device_bytes,
              (unsigned long long)w.barriers);
#endif
  return 0;
}

int stage(int argc, char** argv) {
  std::string in, out;
  orchard::Storage storage = orchard::Storage::kShared;
  size_t offset = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--in") in = v;
    else if (k == "--out") out = v;
    else if (k == "--storage") storage = v == "private" ? orchard::Storage::kPrivate : orchard::Storage::kShared;
    else if (k == "--offset") offset = std::stoul(v);
    else throw std::invalid_argument("unknown flag " + k);
  }
  auto be = orchard::make_backend({});
  std::ifstream f(in, std::ios::binary);
  std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  orchard::Buffer a = be->alloc(data.size(), "a", storage, offset);
  orchard::Buffer b = be->alloc(data.size(), "b", storage, offset);
  orchard::upload(*be, a, data.data());
  be->copy(a, 0, b, 0, orchard::copy_span(data.size()));
  std::vector<char> back(data.size());
  orchard::download(*be, b, back.data());
  std::ofstream o(out, std::ios::binary);
  o.write(back.data(), std::streamsize(back.size()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::string(argv[1]) == "list") {
      auto be = orchard::make_backend({});
      for (auto& k : be->kernels()) std::printf("%s\n", k.c_str());
      return 0;
    }
    if (argc >= 2 && std::string(argv[1]) == "run") return run(argc, argv);
    if (argc >= 2 && std::string(argv[1]) == "stage") return stage(argc, argv);
    std::fprintf(stderr, "usage: driver list | run --kernel K --grid X,Y,Z --tg X,Y,Z ...\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
