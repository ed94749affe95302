package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack/zkready"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// runCluster runs the production topology until ctx ends, reading control commands
// from in.
func runCluster(ctx context.Context, o options, in io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "devstack:", err)
		return 1
	}
	for what, port := range map[string]int{"the Temporal frontend": o.frontendPort, "Temporal Web": o.uiPort} {
		if port != 0 && devstack.PortOpen(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) {
			return fail(fmt.Errorf("port %d (%s) on 127.0.0.1 is in use; stop what uses it", port, what))
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	term := &gate{w: stdout}
	if o.quiet {
		term = &gate{w: io.Discard}
	}
	var zk *zookeeper.Client
	defer func() {
		if zk != nil {
			zk.Close()
		}
	}()
	fmt.Fprintln(stderr, "devstack: starting the cluster (the first start sets up PostgreSQL and the schema)")
	c, err := devstack.StartCluster(ctx, devstack.ClusterOptions{
		Options:      devstack.Options{Dir: o.dir, BinDir: o.bin, Logger: logger},
		Pollers:      o.pollers,
		Workers:      o.workers,
		FrontendPort: o.frontendPort,
		UIPort:       o.uiPort,
		SimCloud:     devstack.SimCloudConfig{Seed: 42, BootSteps: []float64{1, 3}, DeleteLatency: 1},
		PollerReady: func(ctx context.Context, c *devstack.Cluster) (func(context.Context) error, error) {
			zctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			var err error
			if zk, err = zookeeper.Connect(zctx, zookeeper.Options{Servers: c.ZooKeeperAddrs()}); err != nil {
				return nil, fmt.Errorf("connecting to ZooKeeper: %w", err)
			}
			return zkready.PoolsRegistered(zk, devstack.ClusterProvider), nil
		},
		LauncherOutput: term,
	})
	if err != nil {
		return fail(err)
	}
	defer func() {
		fmt.Fprintln(stderr, "devstack: stopping")
		if err := c.Stop(); err != nil {
			fmt.Fprintln(stderr, "devstack:", err)
		}
		fmt.Fprintln(stderr, "devstack: stopped")
	}()
	fmt.Fprint(stdout, clusterInfo(c))
	term.open()

	go watchExits(ctx, c.Stack, stderr)
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return 0
		case line := <-cmds:
			if out := control(ctx, c.Stack, line); out != "" {
				fmt.Fprint(stdout, out)
			}
		}
	}
}

// clusterInfo describes the running cluster.
func clusterInfo(c *devstack.Cluster) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  nodepool-temporal is running as a cluster.\n\n")
	fmt.Fprintf(&b, "    PostgreSQL         %s (data in %s)\n", c.Postgres.Addr(), c.Postgres.DataDir)
	for _, s := range devstack.TemporalServices {
		p := c.Temporal.Ports[s]
		fmt.Fprintf(&b, "    %-18s 127.0.0.1:%d, membership 127.0.0.1:%d\n", "temporal-"+s, p.GRPC, p.Membership)
	}
	fmt.Fprintf(&b, "    Temporal Web       %s\n", c.Temporal.UIURL())
	for i, z := range c.ZooKeeper {
		fmt.Fprintf(&b, "    %-18s %s (data in %s)\n", devstack.ClusterZooKeeperName(i+1), z.Addr, z.Dir)
	}
	fmt.Fprintf(&b, "    sim cloud          %s (provider %s)\n", c.SimCloud.URL, devstack.ClusterProvider)
	for _, l := range append(append([]*devstack.Launcher(nil), c.Pollers...), c.Workers...) {
		fmt.Fprintf(&b, "    %-18s --role %s (pid %d)\n", l.Name(), l.Role, l.Pid())
	}
	fmt.Fprintf(&b, "    configuration      %s\n", c.Config)
	fmt.Fprintf(&b, "    logs               %s/*.log\n\n", c.LogDir())
	fmt.Fprintf(&b, "  In another terminal, act as Zuul:\n\n")
	fmt.Fprintf(&b, "    bin/nodepool -c %s request ubuntu-jammy\n\n", c.Config)
	fmt.Fprintf(&b, "  Commands here: ps, kill NAME, stop NAME, start NAME, restart NAME. Ctrl-C stops everything.\n\n")
	return b.String()
}

// watchExits reports every component that exits while ctx runs; the others carry on.
func watchExits(ctx context.Context, st *devstack.Stack, w io.Writer) {
	var mu sync.Mutex
	watched := map[*devstack.Proc]<-chan struct{}{}
	for {
		for _, p := range st.Procs() {
			done := p.Done()
			mu.Lock()
			if watched[p] == done {
				mu.Unlock()
				continue
			}
			watched[p] = done
			mu.Unlock()
			go func() {
				select {
				case <-ctx.Done():
				case <-done:
					if ctx.Err() == nil {
						fmt.Fprintf(w, "devstack: %s exited (%v); \"start %s\" starts it again\n", p.Name(), describeExit(p), p.Name())
					}
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func describeExit(p *devstack.Proc) string {
	if err := p.ExitErr(); err != nil {
		return err.Error()
	}
	return "by a signal or with status 0"
}

// control runs one command line and returns what to print.
func control(ctx context.Context, st *devstack.Stack, line string) string {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return ""
	}
	cmd, args := fields[0], fields[1:]
	if cmd == "ps" {
		var b strings.Builder
		for _, p := range st.Procs() {
			state := "running"
			if !p.Running() {
				state = "exited"
			}
			fmt.Fprintf(&b, "  %-20s pid %-8d %-8s starts %d  %s\n", p.Name(), p.Pid(), state, p.Starts(), p.LogPath())
		}
		return b.String()
	}
	if len(args) != 1 {
		return "usage: ps | kill NAME | stop NAME | start NAME | restart NAME\n"
	}
	name := args[0]
	p := st.Proc(name)
	if p == nil {
		return fmt.Sprintf("no component %q (ps lists them)\n", name)
	}
	var err error
	switch cmd {
	case "kill":
		err = st.Kill(name)
	case "stop":
		err = p.Stop()
	case "start":
		err = p.Start(ctx)
	case "restart":
		err = st.Restart(ctx, name)
	default:
		return fmt.Sprintf("unknown command %q: ps | kill NAME | stop NAME | start NAME | restart NAME\n", cmd)
	}
	if err != nil {
		return fmt.Sprintf("%s %s: %v\n", cmd, name, err)
	}
	return fmt.Sprintf("%s %s: done (pid %d)\n", cmd, name, p.Pid())
}
