package metalkern_test

// The whole smoke suite, in its storage modes, with every tensor bound at a
// non-zero offset into its buffer (the runner's --buffer-offset): kernels
// must index from the buffer they are given, not from its allocation.

import (
	"context"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/orchardkit/orchard/metalkern"
	"github.com/orchardkit/orchard/metalkern/smoke"
)

func TestSmokeSuitePassesAtBufferOffsets(t *testing.T) {
	r := metalkern.Runner{Path: metalkern.BuiltRunnerForTest(t)}
	exec := func(ctx context.Context, argv, env []string, stdout io.Writer) error {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = stdout, os.Stderr
		return cmd.Run()
	}
	cases := smoke.Suite()
	offsets := []int{4, 20, 16388} // word, odd-word and past a 16 KiB page
	private := 0
	for i := range cases {
		cases[i].BufferOffset = offsets[i%len(offsets)]
		if cases[i].Storage == metalkern.StoragePrivate {
			private++
		}
	}
	if private == 0 || private == len(cases) {
		t.Fatalf("%d of %d cases private: the suite should run both modes", private, len(cases))
	}
	results := smoke.Run(context.Background(), exec, r, t.TempDir(), 7, cases, "", nil, nil)
	if len(results) != len(cases) {
		t.Fatalf("%d of %d cases ran", len(results), len(cases))
	}
	for _, res := range results {
		if res.Err != nil || len(res.Failures) > 0 {
			t.Errorf("%s (%s, offset %d): err %v, failures %v", res.Case.Name(), res.Case.StorageName(), res.Case.BufferOffset, res.Err, res.Failures)
		}
	}
}
