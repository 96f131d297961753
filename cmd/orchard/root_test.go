package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/muesli/termenv"
)

func TestDecideColor(t *testing.T) {
	for _, tc := range []struct {
		name string
		flag string
		env  map[string]string
		tty  bool
		want bool
	}{
		{"tty auto", "auto", nil, true, true},
		{"pipe auto", "auto", nil, false, false},
		{"flag always beats NO_COLOR", "always", map[string]string{"NO_COLOR": "1"}, false, true},
		{"flag never beats CLICOLOR_FORCE", "never", map[string]string{"CLICOLOR_FORCE": "1"}, true, false},
		{"NO_COLOR beats CLICOLOR_FORCE", "auto", map[string]string{"NO_COLOR": "1", "CLICOLOR_FORCE": "1"}, true, false},
		{"empty NO_COLOR is ignored", "auto", map[string]string{"NO_COLOR": ""}, true, true},
		{"CLICOLOR_FORCE forces on a pipe", "auto", map[string]string{"CLICOLOR_FORCE": "1"}, false, true},
		{"CLICOLOR_FORCE=0 does not force", "auto", map[string]string{"CLICOLOR_FORCE": "0"}, false, false},
		{"CLICOLOR=0 turns a tty off", "auto", map[string]string{"CLICOLOR": "0"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decideColor(tc.flag, func(k string) string { return tc.env[k] }, tc.tty)
			if got != tc.want {
				t.Fatalf("decideColor = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestColorProfileHandedToLipgloss(t *testing.T) {
	env := map[string]string{"TERM": "xterm-256color"}
	get := func(k string) string { return env[k] }
	var b bytes.Buffer
	r := renderer(&b, false, get)
	if r.ColorProfile() != termenv.Ascii {
		t.Fatalf("colour off: profile %v", r.ColorProfile())
	}
	if s := r.NewStyle().Bold(true).Render("x"); strings.Contains(s, "\x1b[") {
		t.Fatalf("colour off rendered escapes: %q", s)
	}
	r = renderer(&b, true, get)
	if r.ColorProfile() != termenv.ANSI256 {
		t.Fatalf("colour on with 256color TERM: profile %v", r.ColorProfile())
	}
	if s := r.NewStyle().Bold(true).Render("x"); !strings.Contains(s, "\x1b[") {
		t.Fatalf("colour on rendered no escapes: %q", s)
	}
}

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	if _, ok := env[envPython]; !ok {
		e := map[string]string{envPython: pythonWithoutTorch}
		for k, v := range env {
			e[k] = v
		}
		env = e
	}
	io, out, errOut := testIOStreams(env)
	code := run(context.Background(), args, io)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"--color", "sometimes", "doctor"},
		{"--backend", "cuda", "doctor"},
		{"--backend", "emu", "version"},
		{"rebuild", "extra-arg"},
		{"rebuild", "--no-such-flag"},
		{"no-such-command"},
		{"eject"},
		{"attn", "--q", "q.npy"},
		{"rebuild", "--build-dir", ""},
		{"verify", "--build-dir="},
		{"tail-logs", "--build-dir", " "},
	} {
		code, out, errOut := runCLI(t, nil, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut)
		}
		if out != "" {
			t.Errorf("%v: stdout %q, want nothing", args, out)
		}
		if !strings.HasPrefix(errOut, "orchard: ") {
			t.Errorf("%v: stderr %q does not say what was wrong", args, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "orchard ") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, out, _ = runCLI(t, nil, "version", "--json")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" || v["go"] == "" {
		t.Fatalf("version --json: %d %q", code, out)
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	code, out, _ := runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "130  interrupted") {
		t.Fatalf("help: %d %q", code, out)
	}
}

func TestCompletion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "completion", "bash")
	if code != 0 || !strings.Contains(out, "__start_orchard") {
		t.Fatalf("completion bash: %d %.200q", code, out)
	}
	if code, _, _ := runCLI(t, nil, "completion", "tcsh"); code != exitUsage {
		t.Fatalf("completion tcsh: exit %d", code)
	}
}
