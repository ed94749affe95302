package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	Settings
	BinDir   string
	JSON     bool
	JSONOut  string
	Keep     bool
	Timeout  time.Duration
	Seed     int64
	LogLevel string
	Verbose  bool
	Timeline bool
}

// listFlag collects a repeatable flag's values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// quick mode's sizes.
const (
	quickRequests = 5
	quickBurst    = 40
)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("npbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: npbench [flags]\n\nMeasures launch latency, throughput, deletion latency, cloud API calls and\nresource use of the launcher end to end (see docs/benchmarks.md).\n\n")
		fs.PrintDefaults()
	}
	bootSteps := fs.String("boot-steps", "0.5,1.5", "latency scenario: the cloud's boot step latencies in seconds, comma separated")
	scenarios := fs.String("scenarios", "latency,burst", "scenarios to run, comma separated: latency, burst, waiting, cost, reuse (--waiting or --cost alone runs only those)")
	fs.IntVar(&o.Waiting, "waiting", 0, "waiting scenario: requests left waiting at a pool of tiny capacity (0 = scenario off)")
	fs.IntVar(&o.WaitingCapacity, "waiting-max-servers", 2, "waiting scenario: the pool's max-servers")
	fs.DurationVar(&o.WaitingWindow, "waiting-window", time.Minute, "waiting scenario: idle window measured while the requests wait")
	fs.BoolVar(&o.Cluster, "cluster", false, "run on the production topology: PostgreSQL, the four Temporal services, a 3-member ZooKeeper ensemble, one poller and --workers workers (sim driver only)")
	fs.BoolVar(&o.NoWebapp, "no-webapp", false, "start the launcher with --no-webapp (no web app, Prometheus metrics or stats collector)")
	fs.BoolVar(&o.Floor, "floor", true, "burst scenario: run the engine floor (as many trivial workflows on the same server) after it")
	costSizes := fs.String("cost", "", "cost scenario: burst sizes, comma separated (e.g. 1,10,100,1000); --cost alone runs only this scenario")
	fs.IntVar(&o.WaitingServe, "waiting-serve", 20, "waiting scenario: requests served, and their order checked, as capacity frees")
	fs.BoolVar(&o.Quick, "quick", false, fmt.Sprintf("short run: %d sequential and %d burst requests (unless set explicitly)", quickRequests, quickBurst))
	fs.StringVar(&o.Driver, "driver", driverSim, "launcher driver: sim (against bin/simcloud), aws (against bin/ec2sim), openstack (against bin/ossim) or static (loopback hosts, no cloud)")
	fs.IntVar(&o.Requests, "requests", 20, "latency and reuse scenarios: number of sequential single-node requests")
	fs.IntVar(&o.MinReady, "min-ready", 5, "reuse scenario: the label's min-ready (ready nodes kept for reuse)")
	fs.IntVar(&o.StaticHosts, "static-hosts", 0, "static driver: hosts (127.0.0.2, 127.0.0.3, ...) with one slot each (0 = the scenario's max-servers)")
	fs.IntVar(&o.Burst, "burst", 200, "burst scenario: number of single-node requests submitted at once")
	fs.Float64Var(&o.BurstBoot, "burst-boot", 0.1, "burst scenario: the cloud's boot time in seconds (one boot step)")
	fs.Float64Var(&o.DeleteLatency, "delete-latency", 0.1, "the cloud's instance deletion time in seconds")
	fs.IntVar(&o.Workers, "workers", 1, "launcher processes (the first also runs the poller)")
	fs.IntVar(&o.Shards, "shards", 4, "temporal-dev history shards")
	fs.Float64Var(&o.PollInterval, "poll-interval", 1, "launcher poll-interval: longest timer between state machine steps, seconds")
	fs.Float64Var(&o.DeleteInterval, "delete-interval", 5, "launcher delete-interval: period of the full request and node scan, seconds")
	fs.Float64Var(&o.Rate, "rate", 0, "provider rate: driver steps per second across workers (0 = unlimited)")
	fs.IntVar(&o.MaxServers, "max-servers", 0, "burst scenario: pool max-servers (0 = the burst size, at least 200)")
	fs.StringVar(&o.BinDir, "bin", "bin", "directory with temporal-dev, simcloud, ec2sim, ossim and nodepool-launcher")
	fs.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	fs.StringVar(&o.JSONOut, "json-out", "", "also write the JSON report to this file")
	fs.BoolVar(&o.Keep, "keep", false, "keep the working directory (configuration, logs) after a successful run")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "bound of the whole run")
	fs.Int64Var(&o.Seed, "seed", 1, "seed of the simulated cloud")
	fs.StringVar(&o.LogLevel, "launcher-log-level", "info", "launcher --log-level")
	fs.BoolVar(&o.Verbose, "v", false, "log progress in detail")
	fs.Var((*listFlag)(&o.TemporalConfig), "temporal-dynamic-config", "KEY=VALUE passed to temporal-dev as --dynamic-config-value (repeatable)")
	fs.BoolVar(&o.Timeline, "timeline", false, "print the milestones of the sample workflows (always in --json)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.Quick {
		if !set["requests"] {
			o.Requests = quickRequests
		}
		if !set["burst"] {
			o.Burst = quickBurst
		}
	}
	var err error
	if o.BootSteps, err = parseFloats(*bootSteps); err != nil {
		return o, fmt.Errorf("parsing --boot-steps: %w", err)
	}
	if o.CostSizes, err = parseSizes(*costSizes); err != nil {
		return o, fmt.Errorf("parsing --cost: %w", err)
	}
	list := *scenarios
	if !set["scenarios"] {
		var only []string
		if o.Waiting > 0 {
			only = append(only, waitingScenario)
		}
		if len(o.CostSizes) > 0 {
			only = append(only, costScenario)
		}
		if len(only) > 0 {
			list = strings.Join(only, ",")
		}
	}
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains([]string{latencyScenario, burstScenario, waitingScenario, costScenario, reuseScenario}, s) {
			return o, fmt.Errorf("unknown scenario %q (want %s, %s, %s, %s or %s)", s, latencyScenario, burstScenario, waitingScenario, costScenario, reuseScenario)
		}
		if !slices.Contains(o.Scenarios, s) {
			o.Scenarios = append(o.Scenarios, s)
		}
	}
	var problems []error
	if !slices.Contains(drivers, o.Driver) {
		problems = append(problems, fmt.Errorf("--driver: want %s, %s, %s or %s, got %q", driverSim, driverAWS, driverOpenStack, driverStatic, o.Driver))
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"--requests must be at least 1", o.Requests >= 1},
		{"--burst must be at least 1", o.Burst >= 1},
		{"--workers must be at least 1", o.Workers >= 1},
		{"--shards must be at least 1", o.Shards >= 1},
		{"--burst-boot must not be negative", o.BurstBoot >= 0},
		{"--delete-latency must not be negative", o.DeleteLatency >= 0},
		{"--poll-interval must be positive", o.PollInterval > 0},
		{"--delete-interval must be positive", o.DeleteInterval > 0},
		{"--rate must not be negative", o.Rate >= 0},
		{"--max-servers must not be negative", o.MaxServers >= 0},
		{"--waiting must not be negative", o.Waiting >= 0},
		{"the waiting scenario needs --waiting", o.Waiting > 0 || !slices.Contains(o.Scenarios, waitingScenario)},
		{"--waiting-max-servers must be at least 1", o.WaitingCapacity >= 1},
		{"--waiting-window must be positive", o.WaitingWindow > 0},
		{"--waiting-serve must be at least 1", o.WaitingServe >= 1},
		{"--cluster runs the sim driver only", !o.Cluster || o.Driver == driverSim},
		{"the cost scenario needs --cost", len(o.CostSizes) > 0 || !slices.Contains(o.Scenarios, costScenario)},
		{"--min-ready must be at least 1", o.MinReady >= 1},
		{"--static-hosts must not be negative", o.StaticHosts >= 0},
		{"--driver static runs one launcher process (its slot claims live in one worker's memory)", o.Driver != driverStatic || o.Workers == 1},
		{"the reuse scenario does not run with --cluster", !o.Cluster || !slices.Contains(o.Scenarios, reuseScenario)},
		{"--timeout must be positive", o.Timeout > 0},
	} {
		if !c.ok {
			problems = append(problems, errors.New(c.name))
		}
	}
	if o.MaxServers == 0 {
		o.MaxServers = max(o.Burst, 200)
	}
	return o, errors.Join(problems...)
}

// parseSizes parses a comma-separated list of positive integers.
func parseSizes(s string) ([]int, error) {
	var out []int
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		if v < 1 {
			return nil, fmt.Errorf("size %d is below 1", v)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	out := []float64{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil {
			return nil, err
		}
		if v < 0 {
			return nil, fmt.Errorf("negative value %g", v)
		}
		out = append(out, v)
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "npbench:", err)
		return 2
	}
	level := slog.LevelInfo
	if o.Verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if err := o.resolvePaths(); err != nil {
		fmt.Fprintln(stderr, "npbench:", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "npbench-")
	if err == nil && o.Cluster {
		// PostgreSQL runs as its own user (when the bench runs as root) and must be
		// able to reach its data directory below this one.
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(stderr, "npbench: creating working directory:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	rep := &Report{Started: time.Now(), Machine: machineInfo(), Settings: o.Settings}
	logger.Info("benchmark starting", "dir", dir, "driver", o.Driver, "scenarios", o.Scenarios,
		"load_avg", loadString(rep.Machine.LoadAvgStart))
	failed := false
	for _, name := range o.Scenarios {
		sc := runScenario(ctx, o, name, filepath.Join(dir, name), logger)
		if sc.Error != "" {
			failed = true
			logger.Error("scenario stopped early", "scenario", name, "error", sc.Error)
		}
		rep.Scenarios = append(rep.Scenarios, sc)
		if ctx.Err() != nil {
			break
		}
	}
	rep.Machine.LoadAvgEnd = readLoadAvg()
	rep.Targets = evaluate(rep)
	if o.Keep || failed {
		rep.LogDir = dir
	} else {
		_ = os.RemoveAll(dir)
	}
	if o.JSONOut != "" {
		if err := writeJSONFile(o.JSONOut, rep); err != nil {
			fmt.Fprintln(stderr, "npbench:", err)
			failed = true
		}
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "npbench: writing report:", err)
			return 1
		}
	} else {
		writeText(stdout, rep, o.Timeline)
	}
	if failed {
		return 1
	}
	return 0
}

func writeJSONFile(path string, rep *Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

// resolvePaths makes the binary directory absolute and checks that what the benchmark
// runs is there.
func (o *options) resolvePaths() error {
	var err error
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return fmt.Errorf("resolving --bin: %w", err)
	}
	need := []string{filepath.Join(o.BinDir, "temporal-dev"), filepath.Join(o.BinDir, "nodepool-launcher")}
	switch o.Driver {
	case driverSim:
		need = append(need, filepath.Join(o.BinDir, "simcloud"))
	case driverAWS:
		need = append(need, filepath.Join(o.BinDir, "ec2sim"))
	case driverOpenStack:
		need = append(need, filepath.Join(o.BinDir, "ossim"))
	}
	var missing []string
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (run `make build`, or point --bin at them)", strings.Join(missing, ", "))
	}
	return nil
}

// runScenario starts a fresh stack, runs one scenario on it and stops the stack.
func runScenario(ctx context.Context, o options, name, dir string, logger *slog.Logger) ScenarioReport {
	logger = logger.With("scenario", name)
	sc := ScenarioReport{Name: name, Driver: o.Driver, DeleteLatency: o.DeleteLatency}
	requests := o.Requests
	maxServers := 10
	switch name {
	case latencyScenario:
		sc.BootSteps = o.BootSteps
		sc.Description = fmt.Sprintf("%d single-node requests one after another; each node is returned and deleted before the next", o.Requests)
	case burstScenario:
		sc.BootSteps = []float64{o.BurstBoot}
		requests = o.Burst
		maxServers = o.MaxServers
		sc.Description = fmt.Sprintf("%d single-node requests at once; then every node is returned at once", o.Burst)
	case costScenario:
		sc.BootSteps = []float64{o.BurstBoot}
		maxServers = max(slices.Max(o.CostSizes), 200)
		sc.Description = fmt.Sprintf("bursts of %s single-node requests one after another: what a node costs at each size", intsString(o.CostSizes))
	case waitingScenario:
		sc.BootSteps = []float64{o.BurstBoot}
		maxServers = o.WaitingCapacity
		sc.Description = fmt.Sprintf("%d single-node requests waiting at max-servers %d: the idle launcher's cost, then the order of service as capacity frees", o.Waiting, o.WaitingCapacity)
	case reuseScenario:
		sc.BootSteps = o.BootSteps
		maxServers = max(maxServers, o.MinReady+2)
		sc.MinReady = o.MinReady
		sc.Description = fmt.Sprintf("%d single-node requests one after another, each while min-ready %d ready nodes exist; each node is returned and deleted, and min-ready restored, before the next", o.Requests, o.MinReady)
	}
	if o.Driver == driverStatic {
		// Static hosts exist already: nothing boots, nothing is called.
		sc.BootSteps = []float64{}
		sc.NoCloudAPI = true
		sc.StaticHosts = o.StaticHosts
		if sc.StaticHosts == 0 {
			sc.StaticHosts = maxServers
		}
		maxServers = min(maxServers, sc.StaticHosts)
	}
	sc.BootSeconds = sum(sc.BootSteps)
	sc.MaxServers = maxServers
	if err := os.MkdirAll(dir, 0o755); err != nil {
		sc.Error = fmt.Sprintf("creating %s: %v", dir, err)
		return sc
	}

	mon := newMonitor()
	mctx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	st, err := startStack(ctx, stackOptions{
		BinDir: o.BinDir, Dir: dir, Driver: o.Driver, Shards: o.Shards,
		Workers: o.Workers, BootSteps: sc.BootSteps, DeleteLatency: o.DeleteLatency, MaxServers: maxServers,
		PollInterval: o.PollInterval, DeleteInterval: o.DeleteInterval, Rate: o.Rate, Seed: o.Seed,
		LauncherLogLevel: o.LogLevel, TemporalConfig: o.TemporalConfig, Logger: logger, Monitor: mon, Cluster: o.Cluster, NoWebapp: o.NoWebapp,
		StaticHosts: sc.StaticHosts, MinReady: sc.MinReady,
	})
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	go mon.run(mctx)
	so := scenarioOptions{Requests: requests, Logger: logger, Floor: o.Floor}
	switch name {
	case latencyScenario:
		err = runLatency(ctx, st, mon, so, &sc)
	case burstScenario:
		err = runBurst(ctx, st, mon, so, &sc)
	case costScenario:
		err = runCost(ctx, st, mon, o.CostSizes, so, &sc)
	case waitingScenario:
		err = runWaiting(ctx, st, mon, waitingOptions{
			Requests: o.Waiting, Capacity: o.WaitingCapacity, Window: o.WaitingWindow, Serve: o.WaitingServe, Logger: logger,
		}, &sc)
	case reuseScenario:
		err = runReuse(ctx, st, mon, so, o.MinReady, &sc)
	}
	if err != nil {
		sc.Error = err.Error()
	}
	if st.static != nil {
		sc.StaticConnections = st.static.connections()
	}
	// The cloud was started with the stack: its counters cover the whole scenario.
	if calls, err := cloudCalls(context.WithoutCancel(ctx), o.Driver, st.cloudURL); err == nil {
		sc.CloudCalls = diffCalls(map[string]int64{}, calls)
		sc.CallsPerNode, sc.CallsPerNodeTotal = perNode(sc.CloudCalls, sc.Launched)
	}
	if ctx.Err() != nil && sc.Error == "" {
		// The figures of an interrupted scenario are partial.
		sc.Error = fmt.Sprintf("interrupted: %v", context.Cause(ctx))
	}
	logger.Info("stopping the stack")
	if serr := st.stop(); serr != nil {
		logger.Warn("stopping the stack", "error", serr)
	}
	return sc
}
