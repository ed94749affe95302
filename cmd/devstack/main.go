// Command devstack runs the whole system on one machine for trying it out (`make run`):
// ZooKeeper, the Temporal dev server with its Web UI, the simulated clouds that the
// configuration names, and a launcher.
//
//	devstack [-c examples/nodepool.yaml] [--dir .run] [--bin bin] [--ui-port 8233] [--role all]
//	devstack --cluster [--dir .run-cluster] [--bin bin] [--ui-port 8233] [--frontend-port 7233]
//	         [--pollers 1] [--workers 3]
//
// Everything is placed where the launcher configuration expects it: ZooKeeper on the
// port of its zookeeper-servers entry (data in DIR/zookeeper), Temporal on
// temporal.address (database DIR/temporal.db, Web UI on --ui-port), an ec2sim server on
// the port of every aws provider's loopback endpoint and a simcloud server on the port
// of every sim provider's loopback server. Each component logs to DIR/<name>.log; the
// launcher's log is also shown on the terminal. State in DIR survives restarts (delete
// it to start over).
//
// Ctrl-C (or SIGTERM) stops everything, the launcher first. When a component exits on
// its own, devstack stops the others and exits with status 1.
//
// With --cluster it runs the production topology instead (`make run-cluster`, see
// docs/cluster.md): its own PostgreSQL, the Temporal schema set up by Temporal's SQL
// tool, the frontend, history, matching and worker services as separate processes, a
// three-member ZooKeeper ensemble, a sim cloud, pollers and workers, with a generated
// launcher configuration in DIR/nodepool.yaml. A component that exits is reported and
// the others carry on; lines on standard input control the components:
//
//	ps                 list the components with their pids and state
//	kill NAME          kill -9 the component NAME (e.g. temporal-history, zookeeper-2, worker-1)
//	stop NAME          stop it (SIGTERM)
//	start NAME         start it again on the same ports and data
//	restart NAME       stop and start it
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack/zkready"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/worker"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	config, dir, bin, role string
	uiPort                 int
	quiet                  bool
	// cluster runs the production topology (see runCluster) instead.
	cluster          bool
	pollers, workers int
	frontendPort     int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "c", "examples/nodepool.yaml", "launcher configuration")
	fs.StringVar(&o.dir, "dir", ".run", "directory for data and logs")
	fs.StringVar(&o.bin, "bin", "bin", "directory with temporal-dev, simcloud, ec2sim and nodepool-launcher")
	fs.StringVar(&o.role, "role", worker.RoleAll, "the launcher's --role")
	fs.IntVar(&o.uiPort, "ui-port", 8233, "Temporal Web UI port")
	fs.BoolVar(&o.quiet, "q", false, "do not show the launcher's log on the terminal")
	fs.BoolVar(&o.cluster, "cluster", false, "run the production topology: PostgreSQL, Temporal's services as separate processes, a ZooKeeper ensemble, pollers and workers (-c and --role are not used)")
	fs.IntVar(&o.pollers, "pollers", 1, "with --cluster: poller processes")
	fs.IntVar(&o.workers, "workers", 3, "with --cluster: worker processes")
	fs.IntVar(&o.frontendPort, "frontend-port", 7233, "with --cluster: the Temporal frontend's port")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.cluster && (o.pollers < 1 || o.workers < 1) {
		return o, fmt.Errorf("--pollers %d, --workers %d: want at least one of each", o.pollers, o.workers)
	}
	return o, nil
}

// plan is where each component goes, read from the launcher configuration.
type plan struct {
	zkPort       int
	temporalPort int
	ec2          []cloud
	sim          []cloud
	providers    []string
}

// cloud is a simulated cloud a provider names.
type cloud struct {
	provider string
	addr     string // 127.0.0.1:port
}

func loopbackPort(hostPort string) (int, error) {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return 0, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0, fmt.Errorf("%s is not a loopback address", hostPort)
	}
	return strconv.Atoi(port)
}

func planFor(cfg *config.Config) (plan, error) {
	var p plan
	hosts := cfg.ZooKeeperHosts()
	if len(hosts) != 1 {
		return p, fmt.Errorf("zookeeper-servers: want one local server, got %v", hosts)
	}
	var err error
	if p.zkPort, err = loopbackPort(hosts[0]); err != nil {
		return p, fmt.Errorf("zookeeper-servers: %w", err)
	}
	if p.temporalPort, err = loopbackPort(cfg.Temporal.Address); err != nil {
		return p, fmt.Errorf("temporal.address: %w", err)
	}
	for _, prov := range cfg.Providers {
		p.providers = append(p.providers, prov.Name)
		var keys struct {
			Endpoint string `yaml:"endpoint"`
			Server   string `yaml:"server"`
		}
		if err := prov.Raw.Decode(&keys); err != nil {
			return p, fmt.Errorf("provider %s: %w", prov.Name, err)
		}
		raw, list := keys.Endpoint, &p.ec2
		if prov.Driver == "sim" {
			raw, list = keys.Server, &p.sim
		}
		if raw == "" {
			continue // a real cloud, or the sim cloud in the launcher's process
		}
		u, err := url.Parse(raw)
		if err != nil {
			return p, fmt.Errorf("provider %s: %w", prov.Name, err)
		}
		if _, err := loopbackPort(u.Host); err != nil {
			continue // not ours to start
		}
		*list = append(*list, cloud{provider: prov.Name, addr: u.Host})
	}
	return p, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "devstack:", err)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "devstack:", err)
		return 1
	}
	if o.cluster {
		return runCluster(ctx, o, os.Stdin, stdout, stderr)
	}
	cfg, err := launchconfig.Load(o.config, "")
	if err != nil {
		return fail(fmt.Errorf("loading %s: %w", o.config, err))
	}
	p, err := planFor(cfg)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", o.config, err))
	}
	busy := map[string]int{"ZooKeeper": p.zkPort, "Temporal": p.temporalPort, "Temporal Web": o.uiPort}
	for _, c := range append(append([]cloud(nil), p.ec2...), p.sim...) {
		port, _ := loopbackPort(c.addr)
		busy["the cloud of provider "+c.provider] = port
	}
	for what, port := range busy {
		if devstack.PortOpen(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) {
			return fail(fmt.Errorf("port %d (%s) on 127.0.0.1 is in use; stop what uses it", port, what))
		}
	}

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	st, err := devstack.New(devstack.Options{Dir: o.dir, LogDir: o.dir, BinDir: o.bin, Logger: logger})
	if err != nil {
		return fail(err)
	}
	defer func() {
		fmt.Fprintln(stderr, "devstack: stopping")
		if err := st.Stop(); err != nil {
			fmt.Fprintln(stderr, "devstack:", err)
		}
		fmt.Fprintln(stderr, "devstack: stopped")
	}()
	term := &gate{w: stdout}
	if o.quiet {
		term = &gate{w: io.Discard}
	}
	info, err := start(ctx, st, cfg, p, o, term)
	if err != nil {
		return fail(err)
	}
	fmt.Fprint(stdout, info)
	term.open()

	exited := make(chan *devstack.Proc, 1)
	var once sync.Once
	for _, proc := range st.Procs() {
		go func() {
			<-proc.Done()
			once.Do(func() { exited <- proc })
		}()
	}
	select {
	case <-ctx.Done():
		return 0
	case proc := <-exited:
		// Ctrl-C may reach a child too; let the signal arrive before calling the exit
		// unexpected.
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(500 * time.Millisecond):
		}
		return fail(fmt.Errorf("%s exited on its own (%v); see %s", proc.Name(), proc.ExitErr(), proc.LogPath()))
	}
}

// start starts every component and returns what to print about them.
func start(ctx context.Context, st *devstack.Stack, cfg *config.Config, p plan, o options, term io.Writer) (string, error) {
	z, err := st.StartZooKeeper(ctx, devstack.ZooKeeperOptions{Port: p.zkPort})
	if err != nil {
		return "", err
	}
	tp, err := st.StartTemporal(ctx, devstack.TemporalOptions{
		Port: p.temporalPort, UI: true, UIPort: o.uiPort, DBFile: st.Path("temporal.db"),
	})
	if err != nil {
		return "", err
	}
	info := fmt.Sprintf("\n  nodepool-temporal is running.\n\n"+
		"    ZooKeeper      %s (data in %s)\n"+
		"    Temporal       %s (database %s)\n"+
		"    Temporal Web   %s\n", z.Addr, z.Dir, tp.Addr, st.Path("temporal.db"), tp.UIURL())
	for _, c := range p.ec2 {
		e, err := st.StartEC2Sim(ctx, "ec2sim-"+c.provider, devstack.EC2SimOptions{Listen: c.addr})
		if err != nil {
			return "", err
		}
		info += fmt.Sprintf("    EC2 endpoint   %s (simulated AWS, provider %s)\n", e.URL, c.provider)
	}
	for _, c := range p.sim {
		s, err := st.StartSimCloud(ctx, "simcloud-"+c.provider, devstack.SimCloudConfig{}, devstack.SimCloudOptions{Listen: c.addr})
		if err != nil {
			return "", err
		}
		info += fmt.Sprintf("    sim cloud      %s (provider %s)\n", s.URL, c.provider)
	}

	zctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	chroot, _ := cfg.Chroot()
	zk, err := zookeeper.Connect(zctx, zookeeper.Options{Servers: []string{z.Addr}, Chroot: chroot})
	if err != nil {
		return "", fmt.Errorf("connecting to ZooKeeper: %w", err)
	}
	defer zk.Close()
	var ready func(context.Context) error
	if o.role != worker.RoleWorker {
		ready = zkready.PoolsRegistered(zk, p.providers...)
	}
	cfgPath, _ := filepath.Abs(o.config)
	l, err := st.StartLauncher(ctx, "launcher", devstack.LauncherOptions{
		Config: cfgPath, Role: o.role, ReadyCheck: ready, Output: term,
		Env: []string{"TEMPORAL_ADDRESS=" + tp.Addr},
	})
	if err != nil {
		return "", err
	}
	info += fmt.Sprintf("    launcher       %s -c %s --role %s (pid %d)\n"+
		"    logs           %s/*.log\n\n"+
		"  In another terminal, act as Zuul:\n\n"+
		"    bin/nodepool -c %s request ubuntu-jammy\n"+
		"    bin/nodepool -c %s list\n\n"+
		"  Ctrl-C stops everything.\n\n",
		st.Bin("nodepool-launcher"), o.config, l.Role, l.Pid(), st.LogDir(), o.config, o.config)
	return info, nil
}

// gate passes writes on to w once opened and drops them before.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	opened bool
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opened = true
}

// Write implements io.Writer.
func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opened {
		_, _ = g.w.Write(p)
	}
	return len(p), nil
}
