package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Options configure a Stack.
type Options struct {
	// Dir holds the components' data and configuration files; required.
	Dir string
	// LogDir receives one log file per component, <name>.log; empty means Dir/logs.
	LogDir string
	// BinDir holds temporal-dev, simcloud, ec2sim and nodepool-launcher; empty means
	// BinDir().
	BinDir string
	// Logger receives a record per start, stop, kill and restart; nil discards.
	Logger *slog.Logger
}

// Stack is the set of processes of one deployment. It names them (names are unique),
// keeps them in start order, and stops them in reverse order, so launchers drain while
// Temporal and ZooKeeper still answer. Its methods are safe for concurrent use.
type Stack struct {
	dir, logDir, binDir string
	log                 *slog.Logger

	mu    sync.Mutex
	procs []*Proc
	names map[string]*Proc
}

// New returns an empty stack; it creates the directories.
func New(opts Options) (*Stack, error) {
	if opts.Dir == "" {
		return nil, errors.New("devstack: no directory")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	logDir := opts.LogDir
	if logDir == "" {
		logDir = filepath.Join(dir, "logs")
	}
	if logDir, err = filepath.Abs(logDir); err != nil {
		return nil, err
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = BinDir(); err != nil {
			return nil, err
		}
	}
	if binDir, err = filepath.Abs(binDir); err != nil {
		return nil, err
	}
	for _, d := range []string{dir, logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Stack{dir: dir, logDir: logDir, binDir: binDir, log: logger, names: map[string]*Proc{}}, nil
}

// Dir returns the data and configuration directory.
func (s *Stack) Dir() string { return s.dir }

// LogDir returns the log directory.
func (s *Stack) LogDir() string { return s.logDir }

// Bin returns the path of a binary in the stack's binary directory.
func (s *Stack) Bin(name string) string { return filepath.Join(s.binDir, name) }

// LogFile returns the log file of a component name.
func (s *Stack) LogFile(name string) string { return filepath.Join(s.logDir, name+".log") }

// Path returns a path in the stack's directory.
func (s *Stack) Path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

// reserve claims a component name.
func (s *Stack) reserve(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.names[name]; ok {
		return fmt.Errorf("devstack: a component named %q exists already", name)
	}
	s.names[name] = nil
	return nil
}

// add records a started component, or releases its name when it did not start.
func (s *Stack) add(name string, p *Proc, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.names, name)
		return err
	}
	s.names[name] = p
	s.procs = append(s.procs, p)
	s.log.Info("started", "component", name, "pid", p.Pid(), "log", p.LogPath())
	return nil
}

// Proc returns the component called name, or nil.
func (s *Stack) Proc(name string) *Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[name]
}

// Procs returns the components in start order.
func (s *Stack) Procs() []*Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Proc(nil), s.procs...)
}

// StartZooKeeper starts ZooKeeper, named "zookeeper"; by default with its data in
// Dir/zookeeper on a free port.
func (s *Stack) StartZooKeeper(ctx context.Context, opts ZooKeeperOptions) (*ZooKeeper, error) {
	const name = "zookeeper"
	if err := s.reserve(name); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		opts.Dir = s.Path("zookeeper")
	}
	if opts.LogFile == "" {
		opts.LogFile = s.LogFile(name)
	}
	z, err := StartZooKeeper(ctx, opts)
	var p *Proc
	if z != nil {
		p = z.Proc
	}
	return z, s.add(name, p, err)
}

// StartTemporal starts temporal-dev (the stack's bin/temporal-dev when there is one),
// named "temporal-dev".
func (s *Stack) StartTemporal(ctx context.Context, opts TemporalOptions) (*Temporal, error) {
	const name = "temporal-dev"
	if err := s.reserve(name); err != nil {
		return nil, err
	}
	if opts.Binary == "" {
		if bin := s.Bin("temporal-dev"); checkExecutable(bin) == nil {
			opts.Binary = bin
		}
	}
	if opts.LogFile == "" {
		opts.LogFile = s.LogFile(name)
	}
	t, err := StartTemporal(ctx, opts)
	var p *Proc
	if t != nil {
		p = t.Proc
	}
	return t, s.add(name, p, err)
}

// StartSimCloud starts a simcloud server called name (default "simcloud") with cfg as
// its configuration file (written to Dir/<name>.yaml).
func (s *Stack) StartSimCloud(ctx context.Context, name string, cfg SimCloudConfig, opts SimCloudOptions) (*SimCloud, error) {
	name = cmpOr(name, "simcloud")
	if err := s.reserve(name); err != nil {
		return nil, err
	}
	data, err := cfg.YAML()
	if err == nil {
		opts.ConfigFile = s.Path(name + ".yaml")
		err = os.WriteFile(opts.ConfigFile, data, 0o644)
	}
	if err != nil {
		return nil, s.add(name, nil, err)
	}
	opts.Name = name
	opts.Binary = cmpOr(opts.Binary, s.Bin("simcloud"))
	opts.LogFile = cmpOr(opts.LogFile, s.LogFile(name))
	c, err := StartSimCloud(ctx, opts)
	var p *Proc
	if c != nil {
		p = c.Proc
	}
	return c, s.add(name, p, err)
}

// StartEC2Sim starts an ec2sim server called name (default "ec2sim").
func (s *Stack) StartEC2Sim(ctx context.Context, name string, opts EC2SimOptions) (*EC2Sim, error) {
	name = cmpOr(name, "ec2sim")
	if err := s.reserve(name); err != nil {
		return nil, err
	}
	opts.Name = name
	opts.Binary = cmpOr(opts.Binary, s.Bin("ec2sim"))
	opts.LogFile = cmpOr(opts.LogFile, s.LogFile(name))
	c, err := StartEC2Sim(ctx, opts)
	var p *Proc
	if c != nil {
		p = c.Proc
	}
	return c, s.add(name, p, err)
}

// StartLauncher starts a launcher called name (default "launcher").
func (s *Stack) StartLauncher(ctx context.Context, name string, opts LauncherOptions) (*Launcher, error) {
	name = cmpOr(name, "launcher")
	if err := s.reserve(name); err != nil {
		return nil, err
	}
	opts.Name = name
	opts.Binary = cmpOr(opts.Binary, s.Bin("nodepool-launcher"))
	opts.LogFile = cmpOr(opts.LogFile, s.LogFile(name))
	l, err := StartLauncher(ctx, opts)
	var p *Proc
	if l != nil {
		p = l.Proc
	}
	return l, s.add(name, p, err)
}

// WriteConfig writes a launcher configuration to Dir/<file> and returns its path.
func (s *Stack) WriteConfig(file string, cfg LauncherConfig) (string, error) {
	path := s.Path(file)
	return path, cfg.Write(path)
}

// Kill kills the component called name with SIGKILL, as kill -9 does.
func (s *Stack) Kill(name string) error {
	p := s.Proc(name)
	if p == nil {
		return fmt.Errorf("devstack: no component %q", name)
	}
	s.log.Info("killing", "component", name, "pid", p.Pid())
	p.Kill()
	return nil
}

// Restart stops the component called name and starts it again with the same command
// line; a component that is not running (killed, or exited) is just started.
func (s *Stack) Restart(ctx context.Context, name string) error {
	p := s.Proc(name)
	if p == nil {
		return fmt.Errorf("devstack: no component %q", name)
	}
	s.log.Info("restarting", "component", name, "pid", p.Pid())
	if err := p.Restart(ctx); err != nil {
		return err
	}
	s.log.Info("restarted", "component", name, "pid", p.Pid())
	return nil
}

// CheckAlive returns an error naming every component that is not running, with the
// last lines of its output.
func (s *Stack) CheckAlive() error {
	var errs []error
	for _, p := range s.Procs() {
		if !p.Running() {
			errs = append(errs, fmt.Errorf("%s is not running (%v); last lines of %s:\n%s",
				p.Name(), p.ExitErr(), p.LogPath(), indent(p.Tail(20))))
		}
	}
	return errors.Join(errs...)
}

// Stop stops every component in reverse start order and returns the exit problems.
func (s *Stack) Stop() error {
	procs := s.Procs()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if p.Running() {
			s.log.Info("stopping", "component", p.Name(), "pid", p.Pid())
		}
		if err := p.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
