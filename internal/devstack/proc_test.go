package devstack

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLineWatcher(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string // "" when the marker never completes a line
	}{
		{"whole line", []string{"starting\nsimcloud listening on 127.0.0.1:4000\n"}, "simcloud listening on 127.0.0.1:4000"},
		{"split across writes", []string{"simcloud list", "ening on 127.0", ".0.1:4000\nmore\n"}, "simcloud listening on 127.0.0.1:4000"},
		{"incomplete line", []string{"simcloud listening on 127.0.0.1:4000"}, ""},
		{"absent", []string{"a\nb\n"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			w := newLineWatcher(&out, "listening on")
			for _, s := range tc.writes {
				n, err := w.Write([]byte(s))
				if err != nil || n != len(s) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if out.String() != strings.Join(tc.writes, "") {
				t.Errorf("output %q is not the input", out.String())
			}
			select {
			case line := <-w.ready:
				if line != tc.want {
					t.Errorf("ready line %q, want %q", line, tc.want)
				}
			default:
				if tc.want != "" {
					t.Errorf("marker line not reported, want %q", tc.want)
				}
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		max    int
		want   string
	}{
		{name: "keeps last lines", writes: []string{"a\nb\n", "c\nd\n"}, max: 2, want: "c\nd"},
		{name: "joins split lines", writes: []string{"hel", "lo\nwor", "ld"}, max: 5, want: "hello\nworld"},
		{name: "empty", max: 3, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &tailBuffer{max: tt.max}
			for _, w := range tt.writes {
				if _, err := tb.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if got := tb.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A process is ready at its marker and once its check passes; it can be killed,
// started again (appending to its log), and stopped.
func TestProcLifecycle(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "flag")
	checks := 0
	p := NewProc(ProcSpec{
		Name:        "sleeper",
		Path:        "/bin/sh",
		Args:        []string{"-c", "echo starting; echo ready now; touch " + flag + "; exec sleep 60"},
		LogFile:     filepath.Join(dir, "logs", "sleeper.log"),
		ReadyMarker: "ready",
		ReadyCheck: func(context.Context) error {
			checks++
			if _, err := os.Stat(flag); err != nil {
				return err
			}
			return nil
		},
	})
	if err := p.Start(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if p.ReadyLine() != "ready now" || checks == 0 || !p.Running() {
		t.Fatalf("ready line %q, %d checks, running %v", p.ReadyLine(), checks, p.Running())
	}
	if err := p.Start(ctxFor(t, time.Second)); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start = %v, want already running", err)
	}
	first := p.Pid()
	p.Kill()
	if p.Running() || p.ExitErr() != nil {
		t.Fatalf("after Kill: running %v, exit error %v", p.Running(), p.ExitErr())
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == first || p.Starts() != 2 {
		t.Fatalf("restart kept pid %d or counted %d starts", p.Pid(), p.Starts())
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	data, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "ready now"); n != 2 {
		t.Errorf("log has %d runs, want 2:\n%s", n, data)
	}
	if !strings.Contains(string(data), "starting sleeper again (start 2)") {
		t.Errorf("log does not mark the restart:\n%s", data)
	}
}

// A process that exits before its marker is reported with its output, and one that
// never becomes ready is killed when the start times out.
func TestProcStartFailures(t *testing.T) {
	p := NewProc(ProcSpec{Name: "failing", Path: "/bin/sh", Args: []string{"-c", "echo boom >&2; exit 3"}, ReadyMarker: "ready"})
	err := p.Start(ctxFor(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "exited before becoming ready") || !strings.Contains(err.Error(), "boom") ||
		!strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Start = %v", err)
	}
	if err := p.Stop(); err == nil {
		t.Error("Stop reports no exit status 3")
	}

	p = NewProc(ProcSpec{
		Name: "hanging", Path: "/bin/sh", Args: []string{"-c", "echo up; exec sleep 60"}, ReadyMarker: "up",
		ReadyCheck:   func(context.Context) error { return errors.New("not yet") },
		StartTimeout: 300 * time.Millisecond,
	})
	err = p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") || !strings.Contains(err.Error(), "not yet") {
		t.Fatalf("Start = %v", err)
	}
	if p.Running() {
		t.Error("a process that did not become ready still runs")
	}
}

// Stop falls back to SIGKILL when SIGTERM is ignored, and reaches the whole group.
func TestProcStopKillsIgnoringGroup(t *testing.T) {
	p := NewProc(ProcSpec{
		Name: "stubborn", Path: "/bin/sh",
		Args:        []string{"-c", "trap '' TERM; sleep 60 & echo ready; wait"},
		ReadyMarker: "ready", StopTimeout: 300 * time.Millisecond,
	})
	if err := p.Start(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Stop took %s", d)
	}
	// The group's last member may take a moment to be reaped.
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(-p.Pid(), 0) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the process group outlived Stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
