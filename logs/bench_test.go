package logs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmarks run the Follower in a separate process (this test binary
// re-executed: the code of `orchard tail-logs` without the flag parsing) and
// measure it from outside: docs/perf-logs.md has the figures.

// TestFollowHelperProcess is not a test: with LOGS_FOLLOW_HELPER=1 it
// follows the files after "--" from their start to stdout, says "ready" on
// stderr, and ends on SIGINT.
func TestFollowHelperProcess(t *testing.T) {
	if os.Getenv("LOGS_FOLLOW_HELPER") != "1" {
		return
	}
	files := os.Args[slices.Index(os.Args, "--")+1:]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fl, err := NewFollower(FollowOptions{Files: files, FromStart: true}, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() { <-fl.Ready(); fmt.Fprintln(os.Stderr, "ready") }()
	fl.Run(ctx)
	os.Exit(0)
}

type helperProc struct {
	cmd *exec.Cmd
	out *bufio.Reader
}

func startHelper(b *testing.B, files ...string) *helperProc {
	b.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestFollowHelperProcess$", "--"}, files...)...)
	cmd.Env = append(os.Environ(), "LOGS_FOLLOW_HELPER=1")
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }) // also when not ready
	errs := bufio.NewReader(stderr)
	for {
		line, err := errs.ReadString('\n')
		if err != nil {
			b.Fatalf("helper: %q %v", line, err)
		}
		if line == "ready\n" {
			break
		}
	}
	go errs.WriteTo(io.Discard)
	return &helperProc{cmd: cmd, out: bufio.NewReaderSize(stdout, 1<<20)}
}

// cpuTicks is the process's utime+stime from /proc/<pid>/stat, in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of stat
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return ut + st
}

// cpuNanos is the process's time on CPU, summed over its threads from
// /proc/<pid>/task/*/schedstat (ns; finer than the 10 ms ticks of stat).
// Threads that ended meanwhile are not counted: Go keeps its threads.
func cpuNanos(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if v, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64); err == nil {
			sum += v
		}
	}
	return sum
}

// BenchmarkTailLatency: one line appended (one write) to printed by the
// follower process, p50 and p99 over b.N lines.
func BenchmarkTailLatency(b *testing.B) {
	path := filepath.Join(b.TempDir(), "k.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := startHelper(b, path)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fmt.Fprintf(f, "[flashattn.emu] FWD call=%d\n", i+1)
		if _, err := h.out.ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkTailBurst: 100 000 lines appended by a tight loop (one write each)
// until the last is printed by the follower process; also reported: the
// time the writer took and the time from its last write to the last line
// printed (how far the follower lagged behind).
func BenchmarkTailBurst(b *testing.B) {
	var writing, after time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "k.log")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		h := startHelper(b, path)
		b.StartTimer()
		done := make(chan error, 1)
		go func() {
			for j := range 100_000 {
				if _, err := h.out.ReadString('\n'); err != nil {
					done <- fmt.Errorf("line %d: %w", j, err)
					return
				}
			}
			done <- nil
		}()
		t0 := time.Now()
		for j := range 100_000 {
			fmt.Fprintf(f, "line %06d\n", j)
		}
		t1 := time.Now()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		writing += t1.Sub(t0)
		after += time.Since(t1)
		f.Close()
	}
	b.ReportMetric(float64(writing.Milliseconds())/float64(b.N), "write-ms/op")
	b.ReportMetric(float64(after.Milliseconds())/float64(b.N), "after-write-ms/op")
}

// BenchmarkTailIdleCPU: CPU time the follower process uses following two
// quiet files for 10 s (one op is 10 s; run with -benchtime=1x).
func BenchmarkTailIdleCPU(b *testing.B) {
	dir := b.TempDir()
	a, c := filepath.Join(dir, "a.log"), filepath.Join(dir, "missing.log")
	os.WriteFile(a, []byte("x\n"), 0o600)
	h := startHelper(b, a, c)
	h.out.ReadString('\n')
	time.Sleep(time.Second) // let start-up work finish
	tick := int64(100)      // USER_HZ on Linux
	var ticks, nanos int64
	pid := h.cmd.Process.Pid
	for i := 0; i < b.N; i++ {
		t0, n0 := cpuTicks(b, pid), cpuNanos(pid)
		time.Sleep(10 * time.Second)
		ticks += cpuTicks(b, pid) - t0
		nanos += cpuNanos(pid) - n0
	}
	b.ReportMetric(float64(ticks*1000/tick)/float64(b.N), "stat-cpu-ms/10s")
	b.ReportMetric(float64(nanos)/1e6/float64(b.N), "schedstat-cpu-ms/10s")
}
