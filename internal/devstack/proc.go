package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of ProcSpec.
const (
	// DefaultStartTimeout bounds a start: the process must be ready within it.
	DefaultStartTimeout = 2 * time.Minute
	// DefaultStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	DefaultStopTimeout = 20 * time.Second
	// readyPollInterval is how often a readiness check is repeated.
	readyPollInterval = 100 * time.Millisecond
	// tailLines is how many output lines a Proc keeps for error messages.
	tailLines = 40
)

// ProcSpec describes a process: its command line, where its output goes and how to
// tell that it serves.
type ProcSpec struct {
	// Name names the process in errors and logs.
	Name string
	// Path is the executable; Args its arguments (without the executable).
	Path string
	Args []string
	// Env is added to the environment of the calling process.
	Env []string
	// Dir is the working directory; empty means the caller's.
	Dir string
	// LogFile receives the process's standard output and error. The first start
	// truncates it; later starts append to it. Empty keeps only the last lines in
	// memory (see Tail).
	LogFile string
	// Output, when set, receives the output too (for example a terminal).
	Output io.Writer
	// ReadyMarker is a substring of the output line that the process prints once it
	// serves. Empty means there is none to wait for.
	ReadyMarker string
	// ReadyCheck, when set, is called every 100 ms after the marker until it returns
	// nil: the process is ready then. Its last error is reported when the start
	// times out.
	ReadyCheck func(ctx context.Context) error
	// StartTimeout bounds a start; zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before it kills the process;
	// zero means DefaultStopTimeout.
	StopTimeout time.Duration
	// DeathSignal is sent to the process when the process that started it dies; zero
	// means SIGTERM.
	DeathSignal syscall.Signal
	// Credential, when set, runs the process as another user (a server that refuses
	// to run as root, started by root).
	Credential *syscall.Credential
}

// Proc is a child process that can be started, stopped, killed and started again with
// the same command line. Its methods are safe for concurrent use.
type Proc struct {
	tail *tailBuffer

	mu     sync.Mutex
	spec   ProcSpec
	cur    *procRun
	starts int
}

// procRun is one run of a Proc's process.
type procRun struct {
	cmd   *exec.Cmd
	done  chan struct{} // closed once the process has exited
	err   error         // the exit status, valid once done is closed
	ready chan string   // receives the line with the ready marker
	line  string        // the ready line, once seen
}

func (r *procRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// NewProc returns a Proc for spec that has not been started.
func NewProc(spec ProcSpec) *Proc {
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Path)
	}
	return &Proc{spec: spec, tail: &tailBuffer{max: tailLines}}
}

// StartProc starts a process and waits until it is ready (see Proc.Start).
func StartProc(ctx context.Context, spec ProcSpec) (*Proc, error) {
	p := NewProc(spec)
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns the process's name.
func (p *Proc) Name() string { return p.spec.Name }

// LogPath returns the log file, or "" when the output is kept in memory only.
func (p *Proc) LogPath() string { return p.spec.LogFile }

// Args returns the command line the next start uses, without the executable.
func (p *Proc) Args() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.spec.Args...)
}

// setArgs changes the command line of later starts.
func (p *Proc) setArgs(args []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spec.Args = append([]string(nil), args...)
}

// Start starts the process and waits until it is ready: until it printed its ready
// marker and its readiness check passed. ctx and the start timeout bound the wait; a
// process that is not ready in time, or exits first, is killed, and the error carries
// the last lines of its output. Starting a running process is an error.
func (p *Proc) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.cur != nil && !p.cur.exited() {
		pid := p.cur.cmd.Process.Pid
		p.mu.Unlock()
		return fmt.Errorf("%s is already running (pid %d)", p.spec.Name, pid)
	}
	spec := p.spec
	p.starts++
	first := p.starts == 1

	var out io.Writer = p.tail
	var logFile *os.File
	if spec.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(spec.LogFile), 0o755); err != nil {
			p.mu.Unlock()
			return fmt.Errorf("starting %s: %w", spec.Name, err)
		}
		flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
		if first {
			flags |= os.O_TRUNC
		}
		f, err := os.OpenFile(spec.LogFile, flags, 0o644)
		if err != nil {
			p.mu.Unlock()
			return fmt.Errorf("starting %s: opening log: %w", spec.Name, err)
		}
		if !first {
			fmt.Fprintf(f, "==== %s: starting %s again (start %d) ====\n",
				time.Now().Format(time.RFC3339Nano), spec.Name, p.starts)
		}
		logFile = f
		out = io.MultiWriter(f, p.tail)
	}
	if spec.Output != nil {
		out = io.MultiWriter(out, spec.Output)
	}
	w := newLineWatcher(out, spec.ReadyMarker)

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = w, w
	sig := spec.DeathSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	// A process group of its own: an interrupt from the terminal reaches only the
	// process that started it, which stops its children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig, Credential: spec.Credential}
	r := &procRun{cmd: cmd, done: make(chan struct{}), ready: w.ready}
	if err := startLocked(r, logFile); err != nil {
		p.mu.Unlock()
		if logFile != nil {
			_ = logFile.Close()
		}
		return fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	p.cur = r
	p.mu.Unlock()

	if err := p.waitReady(ctx, spec, r); err != nil {
		_ = signalGroup(r, syscall.SIGKILL)
		<-r.done
		return err
	}
	return nil
}

// startLocked starts r's command from a goroutine locked to its OS thread and keeps
// that thread until the process exits: the parent-death signal is tied to the thread
// that started the child, so this keeps it from firing early.
func startLocked(r *procRun, logFile *os.File) error {
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the child has
		// exited.
		runtime.LockOSThread()
		if err := r.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		r.err = r.cmd.Wait()
		if logFile != nil {
			_ = logFile.Close()
		}
		close(r.done)
	}()
	return <-started
}

func (p *Proc) waitReady(ctx context.Context, spec ProcSpec, r *procRun) error {
	timeout := spec.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if spec.ReadyMarker != "" {
		select {
		case line := <-r.ready:
			p.setReadyLine(r, line)
		case <-r.done:
			// The marker may have come just before the exit.
			select {
			case line := <-r.ready:
				p.setReadyLine(r, line)
			default:
				return fmt.Errorf("%s exited before becoming ready (%v); last output:\n%s", spec.Name, r.err, p.tail)
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to become ready: %w; last output:\n%s", spec.Name, ctx.Err(), p.tail)
		}
	}
	if spec.ReadyCheck == nil {
		return nil
	}
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		err := spec.ReadyCheck(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-r.done:
			return fmt.Errorf("%s exited before becoming ready (%v); last output:\n%s", spec.Name, r.err, p.tail)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to become ready: %w (last check: %v); last output:\n%s",
				spec.Name, ctx.Err(), err, p.tail)
		case <-tick.C:
		}
	}
}

func (p *Proc) setReadyLine(r *procRun, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.line = line
}

// current returns the current (or last) run, nil before the first start.
func (p *Proc) current() *procRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// ReadyLine returns the output line that carried the ready marker in the current run.
func (p *Proc) ReadyLine() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return ""
	}
	return p.cur.line
}

// Pid returns the process id of the current run, 0 before the first start.
func (p *Proc) Pid() int {
	r := p.current()
	if r == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Running reports whether the process runs.
func (p *Proc) Running() bool {
	r := p.current()
	return r != nil && !r.exited()
}

// Done returns a channel that is closed when the current run has exited (already
// closed before the first start).
func (p *Proc) Done() <-chan struct{} {
	r := p.current()
	if r == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return r.done
}

// ExitErr returns the exit status of the last run once it has exited: nil for a clean
// exit (status 0, or ended by SIGTERM, SIGINT or SIGKILL), an error otherwise.
func (p *Proc) ExitErr() error {
	r := p.current()
	if r == nil || !r.exited() {
		return nil
	}
	return exitErr(p.spec.Name, r.err)
}

// Starts returns how many times the process was started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Signal sends sig to the process's group.
func (p *Proc) Signal(sig syscall.Signal) error {
	r := p.current()
	if r == nil || r.exited() {
		return fmt.Errorf("signalling %s: not running", p.spec.Name)
	}
	return signalGroup(r, sig)
}

// Stop ends the process: SIGTERM, then SIGKILL when it has not exited within the stop
// timeout. It waits for the exit and returns the exit status as ExitErr does. Stopping
// a process that is not running returns the status of its last run.
func (p *Proc) Stop() error {
	r := p.current()
	if r == nil {
		return nil
	}
	if !r.exited() {
		_ = signalGroup(r, syscall.SIGTERM)
		timeout := p.spec.StopTimeout
		if timeout <= 0 {
			timeout = DefaultStopTimeout
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-r.done:
		case <-t.C:
			_ = signalGroup(r, syscall.SIGKILL)
			<-r.done
		}
	}
	return exitErr(p.spec.Name, r.err)
}

// Kill ends the process at once with SIGKILL, as kill -9 does, and waits for the exit.
func (p *Proc) Kill() {
	r := p.current()
	if r == nil || r.exited() {
		return
	}
	_ = signalGroup(r, syscall.SIGKILL)
	<-r.done
}

// Restart stops the process (see Stop) and starts it again with the same command
// line. The exit status of the stopped run is not an error of the restart.
func (p *Proc) Restart(ctx context.Context) error {
	_ = p.Stop()
	return p.Start(ctx)
}

// Tail returns the last n lines of the process's output (at most the last 40).
func (p *Proc) Tail(n int) string {
	lines := strings.Split(p.tail.String(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// signalGroup sends sig to the process group of r.
func signalGroup(r *procRun, sig syscall.Signal) error {
	pid := r.cmd.Process.Pid
	if err := syscall.Kill(-pid, sig); err != nil {
		// The group may be gone while the process is not reaped yet.
		return r.cmd.Process.Signal(sig)
	}
	return nil
}

// exitErr turns an exit status into an error; stops by signal are not errors.
func exitErr(name string, err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				return nil
			}
			// A JVM ends with 128+signal when a signal stopped it.
			if ws.Exited() && (ws.ExitStatus() == 128+int(syscall.SIGTERM) || ws.ExitStatus() == 128+int(syscall.SIGINT)) {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// lineWatcher copies a process's output and reports the first complete line that
// contains a marker.
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
	// A failing log must not stop the process's output from being drained.
	_, _ = w.out.Write(b)
	return len(b), nil
}

// tailBuffer is an io.Writer that keeps the last max lines written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial []byte
}

// Write implements io.Writer.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	data := append(t.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(data[:i]))
		data = data[i+1:]
	}
	t.partial = append([]byte(nil), data...)
	if over := len(t.lines) - t.max; over > 0 {
		t.lines = append([]string(nil), t.lines[over:]...)
	}
	return len(p), nil
}

// String returns the kept lines, including an unterminated last line.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(append([]string(nil), lines...), string(t.partial))
	}
	return strings.Join(lines, "\n")
}
