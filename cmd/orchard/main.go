// Command orchard builds and verifies the embedded Metal flash-attention
// runtime: environment check, shader compile, kernel build, smoke
// forward/backward against a float64 reference, and log inspection.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// Set by the release build (-ldflags -X main.version=… -X main.commit=… -X main.date=…).
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

func main() {
	// SIGTERM and SIGHUP (a closed terminal) end a run as Ctrl-C does: the
	// running step's process group is killed, no stamp is written, exit 130.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	stopProfile := startCPUProfile(os.Getenv("ORCHARD_CPUPROFILE"))
	code := run(ctx, os.Args[1:], systemIOStreams())
	stopProfile()
	os.Exit(code)
}

// startCPUProfile writes a CPU profile of the whole run to path (a hidden
// developer aid, docs/perf.md: ORCHARD_CPUPROFILE=FILE); "" does nothing.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		os.Stderr.WriteString("orchard: ORCHARD_CPUPROFILE: " + err.Error() + "\n")
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
