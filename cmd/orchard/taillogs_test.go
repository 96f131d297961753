package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run `orchard tail-logs` as a real process (this test binary
// re-executed) while a second real process appends, truncates, renames and
// deletes the files it follows. Nothing sleeps to assert: every wait polls
// the tailer's output against a deadline.

const helperEnv = "ORCHARD_TAILLOGS_HELPER"

// TestTailLogsHelperProcess is not a test: it is this binary re-executed as
// `orchard <args>` (ORCHARD_TAILLOGS_HELPER=orchard) or as a log writer
// driven through stdin (ORCHARD_TAILLOGS_HELPER=writer).
func TestTailLogsHelperProcess(t *testing.T) {
	args := os.Args
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[i+1:]
	}
	switch os.Getenv(helperEnv) {
	case "orchard":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, args, systemIOStreams())
		stop()
		os.Exit(code)
	case "writer":
		os.Exit(writerMain(os.Stdin, os.Stdout))
	}
}

func helperCmd(role string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestTailLogsHelperProcess$", "-test.count=1", "--"}, args...)...)
	// With -race, a process sleeps 1 s at exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "NO_COLOR=", "GORACE="+gorace)
	return cmd
}

// ---- the tailer ----

type tailer struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  []string
	errs strings.Builder
	done chan struct{} // closed when stdout and stderr are drained
}

func startTailer(t *testing.T, args ...string) *tailer {
	t.Helper()
	tl := &tailer{t: t, cmd: helperCmd("orchard", append([]string{"tail-logs"}, args...)...), done: make(chan struct{})}
	stdout, err := tl.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := tl.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		r := bufio.NewReaderSize(stdout, 4<<20)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				tl.mu.Lock()
				tl.out = append(tl.out, strings.TrimSuffix(line, "\n"))
				tl.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		b := make([]byte, 4096)
		for {
			n, err := stderr.Read(b)
			tl.mu.Lock()
			tl.errs.Write(b[:n])
			tl.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { wg.Wait(); close(tl.done) }()
	t.Cleanup(func() {
		if tl.cmd.ProcessState == nil {
			tl.cmd.Process.Kill()
			tl.cmd.Wait()
		}
	})
	return tl
}

func (tl *tailer) lines() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.out)
}

func (tl *tailer) stderr() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.errs.String()
}

// waitUntil polls cond against a deadline; what describes it on failure.
func (tl *tailer) waitUntil(what string, cond func(lines []string) bool) {
	tl.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(tl.lines()) {
		if time.Now().After(deadline) {
			ls := tl.lines()
			if len(ls) > 20 {
				ls = append(ls[:10:10], append([]string{"…"}, ls[len(ls)-10:]...)...)
			}
			for i, l := range ls {
				if len(l) > 200 {
					ls[i] = l[:100] + fmt.Sprintf("…(%d bytes)…", len(l)) + l[len(l)-100:]
				}
			}
			tl.t.Fatalf("timed out waiting for %s\nstdout: %q\nstderr: %s", what, ls, tl.stderr())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (tl *tailer) waitLines(want ...string) {
	tl.t.Helper()
	tl.waitUntil(fmt.Sprintf("lines %q", want), func(l []string) bool { return slices.Equal(l, want) })
}

func (tl *tailer) waitStderr(substr string) {
	tl.t.Helper()
	tl.waitUntil("stderr "+strconv.Quote(substr), func([]string) bool { return strings.Contains(tl.stderr(), substr) })
}

// interrupt sends SIGINT like Ctrl-C and returns the exit code.
func (tl *tailer) interrupt() int {
	tl.t.Helper()
	tl.cmd.Process.Signal(os.Interrupt)
	return tl.exit("SIGINT")
}

// exit waits (20 s at most) for the tailer to end and returns its exit code;
// after names what should have ended it.
func (tl *tailer) exit(after string) int {
	tl.t.Helper()
	select {
	case <-tl.done:
	case <-time.After(20 * time.Second):
		tl.t.Fatalf("tail-logs did not exit after %s\nstderr: %s", after, tl.stderr())
	}
	err := tl.cmd.Wait()
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		return xe.ExitCode()
	}
	if err != nil {
		tl.t.Fatal(err)
	}
	return 0
}

// fds counts the tailer's open file descriptors.
func (tl *tailer) fds() int {
	tl.t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", tl.cmd.Process.Pid))
	if err != nil {
		tl.t.Fatal(err)
	}
	return len(ents)
}

// ---- the writer ----

type writer struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startWriter(t *testing.T) *writer {
	t.Helper()
	w := &writer{t: t, cmd: helperCmd("writer")}
	var err error
	if w.in, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.out = bufio.NewReader(stdout)
	w.cmd.Stderr = os.Stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.in.Close(); w.cmd.Wait() })
	return w
}

// do runs one writer command and waits until it is done.
func (w *writer) do(args ...string) {
	w.t.Helper()
	raw := make([][]byte, len(args)) // base64 in JSON: the bytes stay as they are
	for i, a := range args {
		raw[i] = []byte(a)
	}
	b, _ := json.Marshal(raw)
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		w.t.Fatal(err)
	}
	reply, err := w.out.ReadString('\n')
	if err != nil || reply != "ok\n" {
		w.t.Fatalf("writer %q: %q %v", args, reply, err)
	}
}

// writerMain executes commands from in (a JSON array of base64 arguments per
// line), replying "ok" to each.
// Every line is written with one write(2) on an O_APPEND descriptor, as the
// runner does (docs/logs.md).
func writerMain(in io.Reader, out io.Writer) int {
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var raw [][]byte
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil || len(raw) < 2 {
			fmt.Fprintf(out, "bad command %q\n", sc.Text())
			continue
		}
		a := make([]string, len(raw))
		for i, r := range raw {
			a[i] = string(r)
		}
		if err := writerDo(a); err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
			continue
		}
		fmt.Fprintln(out, "ok")
	}
	return 0
}

func appendOpen(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
}

func writeLines(f *os.File, from, to int) error {
	for i := from; i < to; i++ {
		if _, err := fmt.Fprintf(f, "line %06d\n", i); err != nil {
			return err
		}
	}
	return nil
}

func writerDo(a []string) error {
	path := a[1]
	num := func(i int) int { n, _ := strconv.Atoi(a[i]); return n }
	switch a[0] {
	case "append": // append PATH TEXT
		f, err := appendOpen(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(a[2])
		return err
	case "long": // long PATH N: one line of N bytes
		f, err := appendOpen(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(strings.Repeat("x", num(2)) + "\n")
		return err
	case "burst": // burst PATH N
		f, err := appendOpen(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return writeLines(f, 0, num(2))
	case "rotate": // rotate PATH N K M: lines [0,K) then rename to PATH.1, [K,M) to the old file, [M,N) to a new PATH
		f, err := appendOpen(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := writeLines(f, 0, num(3)); err != nil {
			return err
		}
		if err := os.Rename(path, path+".1"); err != nil {
			return err
		}
		if err := writeLines(f, num(3), num(4)); err != nil {
			return err
		}
		g, err := appendOpen(path)
		if err != nil {
			return err
		}
		defer g.Close()
		return writeLines(g, num(4), num(2))
	case "cycles": // cycles PATH N: N times delete and recreate with one line
		for i := range num(2) {
			os.Remove(path)
			if err := os.WriteFile(path, fmt.Appendf(nil, "cycle %d\n", i), 0o600); err != nil {
				return err
			}
		}
		return nil
	case "truncate":
		return os.Truncate(path, 0)
	case "rewrite": // rewrite PATH TEXT: truncate and write, one open
		return os.WriteFile(path, []byte(a[2]), 0o600)
	case "replace": // replace PATH TEXT: write a temp file and rename it over PATH
		tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
		if err := os.WriteFile(tmp, []byte(a[2]), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	case "remove":
		return os.Remove(path)
	}
	return fmt.Errorf("unknown command %q", a[0])
}

// ---- the tests ----

func withPrefix(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func TestTailLogsAbsentThenCreatedThenCtrlC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	tl := startTailer(t, "--file", path, "--poll", "1h")
	tl.waitStderr("tail-logs: cannot open '" + path + "' for reading: no such file or directory")
	startWriter(t).do("append", path, "[flashattn.emu] FWD call=1\n")
	tl.waitLines("[flashattn.emu] FWD call=1")
	tl.waitStderr("tail-logs: '" + path + "' has appeared; following new file")
	if code := tl.interrupt(); code != exitInterrupted {
		t.Errorf("exit %d after SIGINT, want %d", code, exitInterrupted)
	}
	if !strings.HasSuffix(tl.stderr(), "orchard: interrupted\n") {
		t.Errorf("stderr: %q", tl.stderr())
	}
}

func TestTailLogsBurstAllInOrderOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	tl := startTailer(t, "--file", path, "--from-start", "--poll", "1h")
	tl.waitStderr("cannot open")
	const n = 100_000
	start := time.Now()
	startWriter(t).do("burst", path, strconv.Itoa(n))
	tl.waitUntil("100 000 lines", func(l []string) bool { return len(l) >= n })
	t.Logf("100 000 lines written and printed in %v", time.Since(start))
	lines := tl.lines()
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %06d", i); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
}

func TestTailLogsLineInTwoHalves(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	w := startWriter(t)
	w.do("append", a, "")
	w.do("append", b, "")
	tl := startTailer(t, "--file", a, "--file", b, "--from-start", "--poll", "1h")
	w.do("append", a, "first half, ")
	// Barriers: the wake-up that prints b's second barrier began after the
	// first was printed, so it read a (a comes first) past the half line.
	w.do("append", b, "barrier 1\n")
	tl.waitLines("b.log: barrier 1")
	w.do("append", b, "barrier 2\n")
	tl.waitLines("b.log: barrier 1", "b.log: barrier 2") // and no half line
	w.do("append", a, "second half\n")
	tl.waitLines("b.log: barrier 1", "b.log: barrier 2", "a.log: first half, second half")
}

func TestTailLogsTruncateAndSameSizeRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	w := startWriter(t)
	w.do("append", path, "aaaa\nbbbb\n")
	tl := startTailer(t, "--file", path, "-n", "10", "--poll", "1h")
	tl.waitLines("aaaa", "bbbb")
	w.do("truncate", path)
	w.do("append", path, "cc\n")
	tl.waitLines("aaaa", "bbbb", "cc")
	tl.waitStderr("tail-logs: " + path + ": file truncated")
	w.do("rewrite", path, "dd\n") // same size as "cc\n"
	tl.waitLines("aaaa", "bbbb", "cc", "dd")
	// stderr is read apart from stdout: wait for the second notice.
	tl.waitUntil("2 truncation notices", func([]string) bool { return strings.Count(tl.stderr(), "file truncated") == 2 })
}

func TestTailLogsDeleteAndRecreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	w := startWriter(t)
	w.do("append", path, "")
	tl := startTailer(t, "--file", path, "--from-start", "--poll", "1h")
	w.do("append", path, "one\n")
	tl.waitLines("one")
	w.do("remove", path)
	tl.waitStderr("'" + path + "' has become inaccessible: no such file or directory")
	w.do("append", path, "two\n")
	tl.waitLines("one", "two")
	tl.waitStderr("'" + path + "' has appeared; following new file")
}

func TestTailLogsRenameRotationWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	w := startWriter(t)
	w.do("append", path, "")
	tl := startTailer(t, "--file", path, "--from-start", "--poll", "1h")
	w.do("append", path, "ready\n") // the tailer has the first file open
	tl.waitLines("ready")
	const n = 20_000
	w.do("rotate", path, strconv.Itoa(n), "5000", "15000")
	tl.waitUntil("20 000 lines", func(l []string) bool { return len(l) >= n+1 })
	for i, l := range tl.lines()[1:] {
		if want := fmt.Sprintf("line %06d", i); l != want {
			t.Fatalf("line %d = %q, want %q (lost, repeated or out of order)", i, l, want)
		}
	}
	tl.waitStderr("following new file")
}

func TestTailLogsAtomicReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	w := startWriter(t)
	w.do("append", path, "old\n")
	tl := startTailer(t, "--file", path, "--poll", "1h")
	tl.waitLines("old")
	w.do("replace", path, "new 1\nnew 2\n")
	tl.waitLines("old", "new 1", "new 2")
	tl.waitStderr("tail-logs: '" + path + "' has been replaced; following new file")
}

func TestTailLogsThousandRecreatesKeepFDsFlat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	w := startWriter(t)
	w.do("append", path, "start\n")
	tl := startTailer(t, "--file", path, "--poll", "1h")
	tl.waitLines("start")
	base := tl.fds()
	w.do("cycles", path, "1000")
	tl.waitUntil("cycle 999", func(l []string) bool { return len(l) > 0 && l[len(l)-1] == "cycle 999" })
	tl.waitUntil(fmt.Sprintf("fd count back to %d", base), func([]string) bool { return tl.fds() <= base })
	last := -1
	for _, l := range tl.lines()[1:] {
		var i int
		if _, err := fmt.Sscanf(l, "cycle %d", &i); err != nil || i <= last {
			t.Fatalf("after cycle %d: %q (repeated or out of order)", last, l)
		}
		last = i
	}
	t.Logf("saw %d of 1000 files; fds %d before, %d after", len(tl.lines())-1, base, tl.fds())
}

func TestTailLogsLongLineInvalidUTF8FiltersColor(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	w := startWriter(t)
	w.do("append", a, "")
	w.do("append", b, "")
	tl := startTailer(t, "--file", a, "--file", b, "--from-start", "--poll", "1h", "--color", "always",
		"-i", `^x|FWD|ERROR|\x{FFFD}`, "-e", `call=2`, "-H", `run=\S+`)
	w.do("long", a, strconv.Itoa(3<<20))
	w.do("append", a, "[t] FWD call=1 run=r1\n[t] FWD call=2 run=r1\nnot included\nbad \xff\xfe utf8\n")
	w.do("append", b, "[t] ERROR msg=boom\n")
	pa, pb := "\x1b[92ma.log:\x1b[0m ", "\x1b[94mb.log:\x1b[0m "
	// Lines of one file keep their order; files interleave as they come.
	tl.waitUntil("a's and b's lines", func(l []string) bool {
		return slices.Equal(withPrefix(l, pa), []string{
			pa + strings.Repeat("x", 1<<20) + " [tail-logs: line cut at 1 MiB]",
			pa + "\x1b[36m[t] FWD\x1b[0m call=1 \x1b[7mrun=r1\x1b[0m",
			pa + "bad \uFFFD utf8",
		}) && slices.Equal(withPrefix(l, pb), []string{pb + "\x1b[1;31m[t] ERROR msg=boom\x1b[0m"}) &&
			len(l) == 4
	})
}

func TestTailLogsJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	w := startWriter(t)
	w.do("append", path, "")
	tl := startTailer(t, "--file", path, "--from-start", "--poll", "1h", "-o", "json")
	w.do("append", path, "[flashattn.emu] BWD call=2 run=r backend=emu shape=1x2x64x64x64 causal=1 dur_us=7\nplain\n")
	tl.waitUntil("2 JSON lines", func(l []string) bool { return len(l) == 2 })
	var rec struct {
		File   string
		Line   string
		Parsed struct {
			Word   string
			Call   int
			Shape  []int
			Causal bool
			DurUS  int64 `json:"dur_us"`
		}
		ParseError string `json:"parse_error"`
	}
	if err := json.Unmarshal([]byte(tl.lines()[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.File != path || rec.Parsed.Word != "BWD" || rec.Parsed.Call != 2 || !rec.Parsed.Causal ||
		!slices.Equal(rec.Parsed.Shape, []int{1, 2, 64, 64, 64}) || rec.Parsed.DurUS != 7 {
		t.Errorf("record: %+v", rec)
	}
	rec.ParseError = ""
	if err := json.Unmarshal([]byte(tl.lines()[1]), &rec); err != nil || rec.Line != "plain" || rec.ParseError == "" {
		t.Errorf("unparsed line: %+v %v", rec, err)
	}
}

func TestTailLogsFlags(t *testing.T) {
	build := t.TempDir()
	for name, tt := range map[string]struct {
		args  []string
		env   map[string]string
		files []string
		check func(*TailLogsOptions) bool
	}{
		"defaults": {args: []string{"--build-dir", build},
			files: []string{build + "/logs/flashattn_kernel_calls.log", build + "/logs/orchard_tensor_profile.log"},
			check: func(o *TailLogsOptions) bool { return o.Lines == 10 && !o.FromStart && o.Output == "text" }},
		"metal cache dir": {args: []string{"--backend", "metal"}, env: map[string]string{"XDG_CACHE_HOME": build},
			files: []string{build + "/orchard/metal/logs/flashattn_kernel_calls.log", build + "/orchard/metal/logs/orchard_tensor_profile.log"}},
		"env overrides": {args: []string{"--build-dir", build}, env: map[string]string{"ORCHARD_KERNEL_LOG": "/k", "ORCHARD_TENSOR_PROFILE_LOG": "/p"},
			files: []string{"/k", "/p"}},
		"files and filters": {args: []string{"--file", "a", "--file", "b", "-n", "3", "-i", "x", "-i", "y", "-e", "z", "-H", "h", "-o", "json"},
			files: []string{"a", "b"},
			check: func(o *TailLogsOptions) bool {
				return o.Lines == 3 && len(o.Include) == 2 && len(o.Exclude) == 1 && len(o.Highlight) == 1 && o.Output == "json"
			}},
		"from start": {args: []string{"--file", "a", "--from-start"}, files: []string{"a"},
			check: func(o *TailLogsOptions) bool { return o.FromStart }},
	} {
		t.Run(name, func(t *testing.T) {
			io, _, _ := testIOStreams(tt.env)
			f := &Factory{IO: io, Global: &GlobalOptions{}}
			root := newRootCmd(f)
			var got *TailLogsOptions
			for i, c := range root.Commands() {
				if c.Name() == "tail-logs" {
					root.RemoveCommand(root.Commands()[i])
					break
				}
			}
			root.AddCommand(newTailLogsCmd(f, func(_ context.Context, o *TailLogsOptions) error { got = o; return nil }))
			root.SetArgs(append([]string{"tail-logs"}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			files, err := tailLogsFiles(context.Background(), got)
			if err != nil || !slices.Equal(files, tt.files) {
				t.Errorf("files = %q, %v; want %q", files, err, tt.files)
			}
			if tt.check != nil && !tt.check(got) {
				t.Errorf("options: %+v", got)
			}
		})
	}
}

func TestTailLogsUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"tail-logs", "-n", "-1"},
		{"tail-logs", "-n", "5", "--from-start"},
		{"tail-logs", "-o", "yaml"},
		{"tail-logs", "-i", "("},
		{"tail-logs", "--poll", "0s"},
		{"tail-logs", "extra"},
		{"tail-logs", "--file", os.TempDir()},
		{"tail-logs", "--file", "/dev/null"},
	} {
		code, _, errOut := runCLI(t, nil, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut)
		}
	}
}

// A FIFO given to follow is refused at once: opening it would wait for a
// writer, in an open(2) that Ctrl-C cannot end.
func TestTailLogsRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	tl := startTailer(t, "--file", path, "--poll", "1h")
	if code := tl.exit("being given a FIFO"); code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	want := "orchard: tail-logs: " + path + " is a named pipe (FIFO), not a regular file; tail-logs follows log files only\n"
	if tl.stderr() != want {
		t.Errorf("stderr %q, want %q", tl.stderr(), want)
	}
}

// A FIFO that appears at a followed name is reported and skipped; the
// tailer still ends on SIGTERM (exit 130).
func TestTailLogsFIFOAppearsThenSIGTERM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	tl := startTailer(t, "--file", path, "--poll", "1h")
	tl.waitStderr("cannot open '" + path + "' for reading: no such file or directory")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	tl.waitStderr("cannot open '" + path + "' for reading: it is a named pipe (FIFO), not a regular file")
	tl.cmd.Process.Signal(syscall.SIGTERM)
	if code := tl.exit("SIGTERM"); code != exitInterrupted {
		t.Errorf("exit %d after SIGTERM, want %d", code, exitInterrupted)
	}
	if !strings.HasSuffix(tl.stderr(), "orchard: interrupted\n") {
		t.Errorf("stderr: %q", tl.stderr())
	}
}

// A stdout nobody reads (a paused pager) blocks the tailer's writes; SIGTERM
// still ends it, exit 130.
func TestTailLogsSIGTERMWithStdoutBlocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	startWriter(t).do("burst", path, "400000") // 4.4 MB: far more than a pipe holds
	cmd := helperCmd("orchard", "tail-logs", "--file", path, "--from-start", "--poll", "1h")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// Its first line is out: it is writing, and the pipe fills.
	if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var xe *exec.ExitError
		if !errors.As(err, &xe) || xe.ExitCode() != exitInterrupted {
			t.Errorf("exit %v after SIGTERM, want %d; stderr %q", err, exitInterrupted, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tail-logs did not exit on SIGTERM while its stdout was blocked")
	}
}

// Control characters of a line are shown escaped (ESC as ^[, as less does)
// whether stdout is a pipe or a terminal (here a fake one: colour on);
// --raw prints them as they are.
func TestTailLogsEscapesControlCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.log")
	const line = "[t] FWD call=1 msg=\x1b[31mred\x1b[0m\ttab \x1b]0;title\x07 del\x7f csi\u009b2J cr\r"
	startWriter(t).do("append", path, line+"\n")
	const escaped = "[t] FWD call=1 msg=^[[31mred^[[0m\ttab ^[]0;title^G del^? csi<U+009B>2J cr"

	piped := startTailer(t, "--file", path, "--from-start", "--poll", "1h")
	piped.waitLines(escaped)
	raw := startTailer(t, "--file", path, "--from-start", "--poll", "1h", "--raw")
	raw.waitLines(line)

	// A terminal: OutTTY decides colour on; the escapes stay escaped inside
	// the colour's own SGR sequences.
	out := &lockedBuffer{}
	io := &IOStreams{In: strings.NewReader(""), Out: out, ErrOut: &lockedBuffer{}, OutTTY: true, ErrTTY: true,
		Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"tail-logs", "--file", path, "--from-start", "--poll", "1h"}, io) }()
	want := "\x1b[36m[t] FWD\x1b[0m call=1 msg=^[[31mred^[[0m\ttab ^[]0;title^G del^? csi<U+009B>2J cr\n"
	deadline := time.Now().Add(20 * time.Second)
	for out.String() != want && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if c := <-code; c != exitInterrupted {
		t.Errorf("exit %d after cancel, want %d", c, exitInterrupted)
	}
	if out.String() != want {
		t.Errorf("on a terminal: %q, want %q", out.String(), want)
	}
}
