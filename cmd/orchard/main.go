// Command orchard builds and verifies the embedded Metal flash-attention
// runtime: environment check, shader compile, kernel build, smoke
// forward/backward against a float64 reference, and log inspection.
package main

import (
	"context"
	"os"
	"os/signal"
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
	os.Exit(run(ctx, os.Args[1:], systemIOStreams()))
}
