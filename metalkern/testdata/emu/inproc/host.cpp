// host.cpp — a program that uses the emu backend the way torch's op library
// does: linked to a shared library holding the emulator, the backend and
// the kernels, with the backend in a static that lives until exit
// (metalkern/emu_inproc_test.go). One subcommand per property:
//
//   host fork       fork (also while another thread is inside a dispatch), dispatch in each child, exit()
//   host threads    several threads dispatching on one backend at once
//   host exit       exit() while another thread is inside a dispatch
//   host overflow   a fiber stack overflow is an exception; a larger stack_kb fixes it
//   host configure  emu_configure / emu_config and bad environment values
//
// Prints "ok: ..." and exits 0 on success; "FAIL: ..." and exits 1 otherwise.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backend.h"
#include "emu_inproc.h"

namespace {

[[noreturn]] void fail(const std::string& msg) {
  std::printf("FAIL: %s\n", msg.c_str());
  std::fflush(stdout);
  std::exit(1);
}

// The backend as an op library holds it: created at first use, destroyed
// (if at all) by a static destructor at exit.
orchard::Backend& backend() {
  static std::unique_ptr<orchard::Backend> be = orchard::make_backend(orchard::BackendOptions{});
  return *be;
}

struct Params {
  int M, N, K;
};

// C = A B on the emu (matmul_f32 of testdata/emu/ok/matmul.metal).
std::vector<float> matmul(orchard::Backend& be, const std::vector<float>& a, const std::vector<float>& b, int M, int N,
                          int K) {
  orchard::Buffer ba = be.alloc(a.size() * 4, "a"), bb = be.alloc(b.size() * 4, "b"),
                  bc = be.alloc(size_t(M) * N * 4, "c");
  orchard::upload(be, ba, a.data());
  orchard::upload(be, bb, b.data());
  Params p{M, N, K};
  be.dispatch("matmul_f32", orchard::Dim3{uint32_t(N / 16), uint32_t(M / 16), 1}, orchard::Dim3{128, 1, 1},
              {orchard::Arg::buf(0, ba), orchard::Arg::buf(1, bb), orchard::Arg::buf(2, bc),
               orchard::Arg::raw(3, &p, sizeof p)});
  std::vector<float> c(size_t(M) * N);
  orchard::download(be, bc, c.data());
  return c;
}

// Small integers: every product and sum is exact in float, so the result
// must equal the plain triple loop bit for bit.
bool check_matmul(orchard::Backend& be, unsigned seed, std::string* why) {
  const int M = 32, N = 32, K = 32;
  std::vector<float> a(M * K), b(K * N);
  for (int i = 0; i < M * K; ++i) a[i] = float(int((i * 7 + seed * 13) % 9) - 4);
  for (int i = 0; i < K * N; ++i) b[i] = float(int((i * 5 + seed * 3) % 7) - 3);
  std::vector<float> c = matmul(be, a, b, M, N, K);
  for (int r = 0; r < M; ++r)
    for (int col = 0; col < N; ++col) {
      float want = 0;
      for (int k = 0; k < K; ++k) want += a[r * K + k] * b[k * N + col];
      if (c[r * N + col] != want) {
        *why = "seed " + std::to_string(seed) + ": c[" + std::to_string(r) + "][" + std::to_string(col) +
               "] = " + std::to_string(c[r * N + col]) + ", want " + std::to_string(want);
        return false;
      }
    }
  return true;
}

void must_matmul(orchard::Backend& be, unsigned seed, const char* where) {
  std::string why;
  if (!check_matmul(be, seed, &why)) fail(std::string(where) + ": " + why);
}

// Forks while another thread is certainly inside a dispatch (spin_forever,
// which the parent ends afterwards by setting its flag): the child must not
// inherit that dispatch's locks or wait for the parent's workers.
void fork_during_dispatch() {
  orchard::Backend& be = backend();
  orchard::Buffer flag = be.alloc(4, "flag"), out = be.alloc(128, "out");
  std::atomic<bool> started{false};
  std::string err;
  std::thread spinner([&] {
    started.store(true);
    try {
      be.dispatch("spin_forever", orchard::Dim3{1, 1, 1}, orchard::Dim3{32, 1, 1},
                  {orchard::Arg::buf(0, flag), orchard::Arg::buf(1, out)});
    } catch (const std::exception& e) {
      err = e.what();
    }
  });
  while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // inside the dispatch now
  pid_t pid = fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0) {
    alarm(20);
    std::string why;
    if (!check_matmul(backend(), 77, &why)) {
      std::printf("child forked mid-dispatch: %s\n", why.c_str());
      _exit(3);
    }
    std::exit(0);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) fail("waitpid failed");
  __atomic_store_n(static_cast<int*>(flag.data()), 1, __ATOMIC_SEQ_CST);  // ends the parent's spin
  spinner.join();
  if (WIFSIGNALED(st))
    fail("the child forked mid-dispatch died of signal " + std::to_string(WTERMSIG(st)) +
         (WTERMSIG(st) == SIGALRM ? " (SIGALRM: it hung for 20 s)" : ""));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("the child forked mid-dispatch exited with status " + std::to_string(WEXITSTATUS(st)));
  if (!err.empty()) fail("the parent's spinning dispatch: " + err);
}

int cmd_fork() {
  orchard::emu_configure("watchdog_seconds", "120");  // the spin below outlasts a hung child's 20 s
  must_matmul(backend(), 1, "parent before fork");  // the pool exists now
  fork_during_dispatch();
  std::atomic<bool> stop{false};
  std::atomic<int> busy_runs{0};
  std::string busy_err;
  std::thread busy([&] {  // keeps dispatching, so forks land in the middle of dispatches
    for (unsigned s = 100; !stop.load(); ++s) {
      std::string why;
      if (!check_matmul(backend(), s, &why)) {
        busy_err = why;
        return;
      }
      busy_runs.fetch_add(1);
    }
  });
  while (busy_runs.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int kChildren = 8;
  for (int i = 0; i < kChildren; ++i) {
    pid_t pid = fork();
    if (pid < 0) fail("fork failed");
    if (pid == 0) {
      alarm(20);  // a hung child dies of SIGALRM: the parent reports it
      std::string why;
      for (unsigned s = 0; s < 3; ++s)
        if (!check_matmul(backend(), 1000 + 10 * i + s, &why)) {
          std::printf("child %d: %s\n", i, why.c_str());
          std::fflush(stdout);
          _exit(3);
        }
      std::exit(0);  // static destructors run in the child too
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) fail("waitpid failed");
    if (WIFSIGNALED(st))
      fail("child " + std::to_string(i) + " died of signal " + std::to_string(WTERMSIG(st)) +
           (WTERMSIG(st) == SIGALRM ? " (SIGALRM: it hung for 20 s)" : ""));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail("child " + std::to_string(i) + " exited with status " + std::to_string(WEXITSTATUS(st)));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop.store(true);
  busy.join();
  if (!busy_err.empty()) fail("parent's dispatching thread: " + busy_err);
  must_matmul(backend(), 2, "parent after the forks");
  std::printf("ok: %d children dispatched after fork; the parent's thread ran %d dispatches meanwhile\n", kChildren,
              busy_runs.load());
  return 0;
}

int cmd_threads() {
  const int kThreads = 4, kRuns = 25;
  std::vector<std::string> errs(kThreads);
  std::atomic<int> ready{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) {
      }
      for (int r = 0; r < kRuns && errs[t].empty(); ++r) {
        try {
          std::string why;
          if (!check_matmul(backend(), unsigned(t * 1000 + r), &why)) errs[t] = why;
        } catch (const std::exception& e) {
          errs[t] = e.what();
        }
      }
    });
  for (auto& th : ts) th.join();
  for (int t = 0; t < kThreads; ++t)
    if (!errs[t].empty()) fail("thread " + std::to_string(t) + ": " + errs[t]);
  std::printf("ok: %d threads x %d dispatches on one backend, all exact\n", kThreads, kRuns);
  return 0;
}

int cmd_exit() {
  orchard::emu_configure("watchdog_seconds", "3600");
  must_matmul(backend(), 1, "before exit");
  std::atomic<bool> started{false};
  std::thread([&] {
    orchard::Backend& be = backend();
    orchard::Buffer flag = be.alloc(4, "flag"), out = be.alloc(128, "out");
    started.store(true);
    be.dispatch("spin_forever", orchard::Dim3{1, 1, 1}, orchard::Dim3{32, 1, 1},
                {orchard::Arg::buf(0, flag), orchard::Arg::buf(1, out)});  // never returns
  }).detach();
  while (!started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::printf("ok: exiting while a dispatch runs\n");
  std::fflush(stdout);
  std::exit(0);  // static destructors run: none may join the pool's threads
}

void expect_overflow(const char* where, const char* kb) {
  orchard::Backend& be = backend();
  float in[4] = {1, 2, 3, 4};
  orchard::Buffer bi = be.alloc(16, "in"), bo = be.alloc(128, "out");
  orchard::upload(be, bi, in);
  try {
    be.dispatch("deep_stack", orchard::Dim3{1, 1, 1}, orchard::Dim3{32, 1, 1},
                {orchard::Arg::buf(0, bi), orchard::Arg::buf(1, bo)});
  } catch (const std::runtime_error& e) {
    std::string m = e.what();
    for (std::string want : {std::string("kernel 'deep_stack'"), std::string("stack overflow"),
                             std::string(kb) + " KiB stack", std::string("ORCHARD_EMU_STACK_KB"),
                             std::string("stack_kb")})
      if (m.find(want) == std::string::npos) fail(std::string(where) + ": message lacks '" + want + "': " + m);
    std::printf("overflow error: %s\n", m.c_str());
    return;
  }
  fail(std::string(where) + ": deep_stack did not fail");
}

int cmd_overflow() {
  expect_overflow("first overflow", "256");
  must_matmul(backend(), 3, "after an overflow");  // the pool survives it
  expect_overflow("second overflow on the same workers", "256");
  orchard::emu_configure("stack_kb", "1024");  // applies to the existing backend
  orchard::Backend& be = backend();
  float in[4] = {1, 2, 3, 4}, out[32];
  orchard::Buffer bi = be.alloc(16, "in"), bo = be.alloc(128, "out");
  orchard::upload(be, bi, in);
  be.dispatch("deep_stack", orchard::Dim3{1, 1, 1}, orchard::Dim3{32, 1, 1},
              {orchard::Arg::buf(0, bi), orchard::Arg::buf(1, bo)});
  orchard::download(be, bo, out);
  if (out[1] != 4 * 7919.0f) fail("deep_stack with 1 MiB stacks: out[1] = " + std::to_string(out[1]));
  orchard::emu_configure("stack_kb", "");
  expect_overflow("after stack_kb was reset", "256");
  std::printf("ok: overflows are exceptions\n");
  return 0;
}

int cmd_configure() {
  // Set after static initialisation, before the first use: must be seen.
  setenv("ORCHARD_EMU_MODE", "threads", 1);
  try {
    orchard::make_backend(orchard::BackendOptions{});
    fail("a bad ORCHARD_EMU_STACK_KB was accepted");
  } catch (const std::runtime_error& e) {
    std::printf("env error: %s\n", e.what());
  }
  orchard::emu_configure("stack_kb", "512");  // wins over the bad environment value
  if (backend().device() != "cpu (threads)") fail("ORCHARD_EMU_MODE set before first use not seen: " + backend().device());
  if (orchard::emu_config("stack_kb") != "512") fail("emu_config(stack_kb) = " + orchard::emu_config("stack_kb"));
  orchard::emu_configure("mode", "fibers");
  orchard::emu_configure("workers", "3");
  if (backend().device() != "cpu (fibers, 3 workers)") fail("after configure: device " + backend().device());
  must_matmul(backend(), 4, "after configure");
  const char* bad[][2] = {{"stack_kb", "12"}, {"stack_kb", "lots"}, {"workers", "-1"}, {"mode", "gpu"},
                          {"watchdog_seconds", "0"}, {"colour", "red"}};
  for (auto& kv : bad) {
    try {
      orchard::emu_configure(kv[0], kv[1]);
      fail(std::string("emu_configure(") + kv[0] + ", " + kv[1] + ") was accepted");
    } catch (const std::invalid_argument& e) {
      std::printf("invalid_argument: %s\n", e.what());
    }
  }
  if (orchard::emu_config("workers") != "3") fail("a rejected value changed workers: " + orchard::emu_config("workers"));
  std::printf("ok: configure\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "fork") return cmd_fork();
    if (cmd == "threads") return cmd_threads();
    if (cmd == "exit") return cmd_exit();
    if (cmd == "overflow") return cmd_overflow();
    if (cmd == "configure") return cmd_configure();
  } catch (const std::exception& e) {
    fail(cmd + ": " + e.what());
  }
  std::fprintf(stderr, "usage: host fork|threads|exit|overflow|configure\n");
  return 2;
}
