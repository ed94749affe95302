package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopTimeout is how long a process gets to exit after SIGTERM before it is killed.
const stopTimeout = 20 * time.Second

// proc is a child process started by the benchmark. Its standard output and error go to
// a log file; a line containing the ready marker is reported on ready.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *lineWatcher
	logFile *os.File
	// done is closed when the process has exited; err is its exit status then.
	done chan struct{}
	err  error
}

// startProc starts bin with args, logging to dir/name.log. The process gets its own
// process group, so that an interrupt of the terminal reaches the benchmark only and
// the benchmark stops its children in order; it is killed if the benchmark dies.
func startProc(name, dir string, env []string, readyMarker, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating log of %s: %w", name, err)
	}
	w := newLineWatcher(f, readyMarker)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, log: w, logFile: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitReady waits for the ready marker and returns the line that carried it. It fails
// when the process exits first, ctx ends or timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line := <-p.log.ready:
		return line, nil
	case <-p.done:
		// The marker may have arrived just before the exit.
		select {
		case line := <-p.log.ready:
			return line, nil
		default:
		}
		return "", fmt.Errorf("%s exited during start (%v); last lines of %s:\n%s", p.name, p.err, p.logPath, p.tail(20))
	case <-t.C:
		return "", fmt.Errorf("%s not ready after %s; last lines of %s:\n%s", p.name, timeout, p.logPath, p.tail(20))
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for %s: %w", p.name, ctx.Err())
	}
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopTimeout, then kills the process. It returns the
// exit status; a process stopped by SIGTERM or SIGKILL is not an error.
func (p *proc) stop(logger *slog.Logger) error {
	if p.exited() {
		return p.exitErr()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		logger.Warn("process ignored SIGTERM; killing it", "process", p.name, "pid", p.pid())
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.exitErr()
}

func (p *proc) exitErr() error {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil
		}
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w", p.name, p.err)
	}
	return nil
}

// tail returns the last n lines of the log.
func (p *proc) tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return lastLines(string(data), n)
}

// lastLines returns the last n lines of s, indented for inclusion in an error.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// lineWatcher copies a process's output to a file and reports the first complete line
// containing a marker.
type lineWatcher struct {
	out    io.Writer
	marker string
	ready  chan string

	mu      sync.Mutex
	partial []byte
	seen    bool
}

func newLineWatcher(out io.Writer, marker string) *lineWatcher {
	return &lineWatcher{out: out, marker: marker, ready: make(chan string, 1)}
}

// Write implements io.Writer.
func (w *lineWatcher) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen && w.marker != "" {
		w.partial = append(w.partial, b...)
		for {
			i := bytes.IndexByte(w.partial, '\n')
			if i < 0 {
				break
			}
			line := string(w.partial[:i])
			w.partial = w.partial[i+1:]
			if strings.Contains(line, w.marker) {
				w.seen = true
				w.partial = nil
				w.ready <- line
				break
			}
		}
	}
	return w.out.Write(b)
}
