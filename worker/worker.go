package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	tworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/sync/errgroup"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/internal/logging"
	"github.com/nodepool-temporal/nodepool-temporal/metrics"
	"github.com/nodepool-temporal/nodepool-temporal/metrics/facts"
	"github.com/nodepool-temporal/nodepool-temporal/poller"
	"github.com/nodepool-temporal/nodepool-temporal/webapp"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Version is the launcher's version, set at build time.
var Version = "dev"

// Roles a launcher process can run.
const (
	RoleAll    = "all"
	RolePoller = "poller"
	RoleWorker = "worker"
)

// Options configure Run.
type Options struct {
	// Config is the loaded and validated configuration.
	Config *config.Config
	// Role is RoleAll, RolePoller or RoleWorker.
	Role   string
	Logger *slog.Logger
	// StopTimeout bounds the graceful drain of running activities on shutdown.
	StopTimeout time.Duration
	// Ready, when set, is called once everything has started.
	Ready func()
	// Webapp starts the web app on the configuration's webapp address: upstream's
	// status endpoints, /ready and Prometheus's /metrics.
	Webapp bool
}

// NewLogger returns the launcher's logger writing to w, in upstream Nodepool's
// format: logger names such as nodepool.PoolWorker.<provider>-<pool> and the
// [e: …] [node_request: …] [node: …] prefixes in text, the same facts as fields in
// JSON (see internal/logging). level is debug, info, warning or error; format is
// text or json.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	return logging.New(w, level, format)
}

// Run runs the launcher until ctx ends, then drains and stops.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Every record names its logger as upstream does, whatever handler the caller
	// brought (NewLogger's writes the name in front of the message).
	logger = slog.New(logging.Adapt(logger.Handler()))
	switch opts.Role {
	case "", RoleAll, RolePoller, RoleWorker:
	default:
		return fmt.Errorf("unknown role %q (want all, poller or worker)", opts.Role)
	}
	role := opts.Role
	if role == "" {
		role = RoleAll
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 30 * time.Second
	}
	settings := Settings(cfg)

	zk, err := launchconfig.ConnectZooKeeper(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer zk.Close()

	tc, err := DialTemporal(ctx, cfg.Temporal, logger)
	if err != nil {
		return err
	}
	defer tc.Close()
	searchAttrs := EnsureSearchAttributes(ctx, tc, cfg.Temporal.Namespace, logger)

	// Metrics go to statsd when STATSD_HOST or STATSD_PORT is set, as upstream's, and
	// to Prometheus on the web app's /metrics.
	var sinks metrics.Sinks
	if sinks.Statsd, err = metrics.StatsdFromEnv(os.Getenv, logger); err != nil {
		return err
	}
	if opts.Webapp {
		sinks.Prometheus = metrics.NewPrometheus()
	}
	defer sinks.Close()
	rec := sinks.Recorder()

	g, gctx := errgroup.WithContext(ctx)
	var started atomic.Bool
	if opts.Webapp {
		// The web app also stops when Run returns early, before g.Wait.
		wctx, stopWebapp := context.WithCancel(gctx)
		defer stopWebapp()
		startWebapp(wctx, g, cfg, zk, sinks, started.Load, role, settings, logger)
	}
	// starter starts the request and deletion workflows. In a process that also runs
	// the workers it is their client: the SDK hands a workflow's first task straight to
	// a worker in the same process (eager start) only when the start goes through the
	// client the worker was created from.
	starter := tc
	if role == RoleAll || role == RoleWorker {
		// The workers' client carries the metrics handler through which workflows
		// record launch attempts (metrics.SDKHandler); it shares tc's connection.
		wc, err := client.NewClientFromExisting(tc, client.Options{Namespace: cfg.Temporal.Namespace,
			Logger: log.NewStructuredLogger(logger.With("component", "temporal")), MetricsHandler: metrics.SDKHandler(rec)})
		if err != nil {
			return fmt.Errorf("connecting to Temporal: %w", err)
		}
		defer wc.Close()
		starter = wc
	}
	var p *poller.Poller
	if role == RoleAll || role == RolePoller {
		p = poller.New(poller.Options{
			ZK:               zk,
			Temporal:         starter,
			TaskQueue:        settings.TaskQueue,
			Pools:            pollerPools(settings),
			Instance:         processInstance,
			Hostname:         hostname(),
			Version:          Version,
			Policy:           settings.Policy(orphanGrace(cfg)),
			ScanInterval:     cfg.Launcher.DeleteInterval.Duration(),
			PollInterval:     settings.PollInterval,
			SearchAttributes: searchAttrs,
			Register:         true,
			Logger:           logger.With("component", "poller"),
		})
	}
	if role == RoleAll || role == RoleWorker {
		drv, err := BuildDrivers(ctx, cfg, logger)
		if err != nil {
			return err
		}
		defer func() {
			for name, d := range drv {
				if err := d.Close(); err != nil {
					logger.Warn("closing driver", "provider", name, "error", err)
				}
			}
		}()
		if err := restoreStaticClaims(ctx, zk, drv, logger); err != nil {
			return err
		}
		// Activities that look at every node read them from the records kept by
		// watches: the poller's in a process that runs one (each change is read once
		// in the process), else a mirror of the node tree.
		var nodes zookeeper.RecordSource[*zookeeper.Node]
		if p != nil {
			nodes = p.NodeRecords()
		} else {
			nodes = zk.MirrorNodes(ctx)
		}
		acts := activities.New(zk, drv, settings, tc, logger.With("component", "activities"), activities.WithRecorder(rec),
			activities.WithNodeRecords(nodes))
		workers := newWorkers(starter, cfg, settings, acts, opts.StopTimeout, rec)
		for _, w := range workers {
			if err := w.Start(); err != nil {
				for _, started := range workers {
					started.Stop()
				}
				return fmt.Errorf("starting Temporal worker: %w", err)
			}
		}
		logger.Info("temporal workers started", "task_queue", settings.TaskQueue, "providers", len(settings.Providers))
		g.Go(func() error {
			startSweeps(gctx, tc, cfg, settings.TaskQueue, logger)
			return nil
		})
		g.Go(func() error {
			startMinReady(gctx, tc, minReadyConfig(cfg, settings), settings.TaskQueue, logger)
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			logger.Info("draining Temporal workers")
			for _, w := range workers {
				w.Stop()
			}
			return nil
		})
	}
	if p != nil {
		g.Go(func() error { return p.Run(gctx) })
		// The process that watches ZooKeeper also reports the gauges: the configured
		// limits always, nodes, requests and workflows when it wins the stats election,
		// from the records the poller keeps.
		if sinks.Enabled() {
			col := metrics.NewCollector(metrics.CollectorOptions{
				ZK: zk, Statsd: sinks.Statsd, Prometheus: sinks.Prometheus,
				Requests: p.RequestRecords(), Nodes: p.NodeRecords(),
				Facts: &facts.Temporal{Client: tc, Namespace: cfg.Temporal.Namespace,
					TaskQueue: settings.TaskQueue, Pools: facts.Pools(cfg)},
				Limits:     facts.Limits(cfg),
				Identifier: fmt.Sprintf("%s-%d", hostname(), os.Getpid()),
				Logger:     logger.With("component", "stats"),
			})
			g.Go(func() error { col.Run(gctx); return nil })
		}
	}
	started.Store(true)
	if opts.Ready != nil {
		opts.Ready()
	}
	logger.Info("launcher running", "role", role, "version", Version)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func newWorkers(tc client.Client, cfg *config.Config, s activities.Settings, acts *activities.Activities, stop time.Duration,
	rec metrics.Recorder) []tworker.Worker {
	intercept := []interceptor.WorkerInterceptor{metrics.ActivityInterceptor(rec)}
	main := tworker.New(tc, s.TaskQueue, tworker.Options{WorkerStopTimeout: stop, Interceptors: intercept})
	main.RegisterWorkflowWithOptions(workflows.HandleRequest, workflow.RegisterOptions{Name: workflows.RequestWorkflowType})
	main.RegisterWorkflowWithOptions(workflows.DeleteNode, workflow.RegisterOptions{Name: workflows.DeleteWorkflowType})
	main.RegisterWorkflowWithOptions(workflows.DeleteNodes, workflow.RegisterOptions{Name: workflows.DeleteBatchWorkflowType})
	main.RegisterWorkflowWithOptions(workflows.PoolLedger, workflow.RegisterOptions{Name: workflows.LedgerWorkflowType})
	main.RegisterWorkflowWithOptions(workflows.LeakSweep, workflow.RegisterOptions{Name: workflows.SweepWorkflowType})
	main.RegisterWorkflowWithOptions(workflows.MinReady, workflow.RegisterOptions{Name: workflows.MinReadyWorkflowType})
	main.RegisterActivity(acts)
	// Pool ledgers answer every request's acquire: their workflow tasks get a task
	// queue of their own, so that they do not wait behind a burst of request workflow
	// tasks. Ledgers started before this queue existed keep running on the main one.
	ledgers := tworker.New(tc, names.LedgerTaskQueue(s.TaskQueue), tworker.Options{WorkerStopTimeout: stop, Interceptors: intercept})
	ledgers.RegisterWorkflowWithOptions(workflows.PoolLedger, workflow.RegisterOptions{Name: workflows.LedgerWorkflowType})
	ledgers.RegisterActivity(acts)
	out := []tworker.Worker{main, ledgers}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		// Driver steps of a provider run on their own task queue, whose activity rate
		// the Temporal matching service enforces across every worker replica.
		opts := tworker.Options{WorkerStopTimeout: stop, DisableWorkflowWorker: true, Interceptors: intercept}
		if rate := p.RateOr(0); rate > 0 {
			opts.TaskQueueActivitiesPerSecond = rate
		}
		w := tworker.New(tc, names.ProviderTaskQueue(s.TaskQueue, p.Name), opts)
		w.RegisterActivity(acts)
		out = append(out, w)
	}
	return out
}

// startWebapp serves the web app on the configuration's webapp address until ctx
// ends. /ready waits for started and, in a process that runs the poller, for every
// pool's registration. An address that cannot be listened on (another launcher on
// the same host, say) is logged and the launcher runs without its web app.
func startWebapp(ctx context.Context, g *errgroup.Group, cfg *config.Config, zk *zookeeper.Client, sinks metrics.Sinks,
	started func() bool, role string, settings activities.Settings, logger *slog.Logger) {
	addr := net.JoinHostPort(cfg.Webapp.ListenAddress, strconv.Itoa(cfg.Webapp.Port))
	ln, err := webapp.Listen(addr)
	if err != nil {
		logger.Error("web app not started", "address", addr, "error", err)
		return
	}
	var pools []string
	if role == RoleAll || role == RolePoller {
		for _, p := range pollerPools(settings) {
			pools = append(pools, names.PoolInstanceID(p.ID, processInstance))
		}
	}
	app := webapp.New(webapp.Options{ZK: zk, Started: started, Pools: pools, Metrics: sinks.Handler(),
		Logger: logger.With("component", "webapp")})
	logger.Info("web app listening", "address", ln.Addr().String())
	g.Go(func() error {
		if err := app.Serve(ctx, ln); err != nil {
			logger.Error("web app stopped", "error", err)
		}
		return nil
	})
}

// sweepStarter is the part of the Temporal client that starts leak sweeps.
type sweepStarter interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID string, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
}

// sweepRetryFirst is the first wait before starting a leak sweep again after a failure.
var sweepRetryFirst = time.Second

// startSweeps makes sure that every configured provider's leak sweep runs (one
// LeakSweep workflow per provider, whatever the number of launcher processes) and
// hands each the configured cleanup-interval. Signal-with-start starts a sweep that is
// not running and tells a running one the interval, so a changed configuration
// applies without a second sweep. Failures are retried until ctx ends.
func startSweeps(ctx context.Context, tc sweepStarter, cfg *config.Config, taskQueue string, logger *slog.Logger) {
	interval := cfg.Launcher.CleanupInterval.Duration().Seconds()
	seen := map[string]bool{}
	var pending []string
	for i := range cfg.Providers {
		if name := cfg.Providers[i].Name; !seen[name] {
			seen[name] = true
			pending = append(pending, name)
		}
	}
	wait := sweepRetryFirst
	for len(pending) > 0 {
		var failed []string
		for _, provider := range pending {
			id := names.SweepWorkflowID(taskQueue, provider)
			in := workflows.SweepInput{Provider: provider, TaskQueue: taskQueue, IntervalSec: interval}
			_, err := tc.SignalWithStartWorkflow(ctx, id, workflows.SignalSweepConfig,
				workflows.SweepConfig{IntervalSec: interval},
				client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, workflows.SweepWorkflowType, in)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				logger.Warn("starting leak sweep", "provider", provider, "workflow_id", id, "error", err)
				failed = append(failed, provider)
				continue
			}
			logger.Info("leak sweep running", "provider", provider, "workflow_id", id, "interval_sec", interval)
		}
		pending = failed
		if len(pending) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// minReadyConfig lists the labels with min-ready > 0 that a pool of this deployment
// offers (upstream launchers keep the others), sorted by label.
func minReadyConfig(cfg *config.Config, s activities.Settings) workflows.MinReadyConfig {
	offered := map[string]bool{}
	for _, p := range s.Providers {
		if p.Idle {
			continue
		}
		for _, pool := range p.Pools {
			if pool.MaxServers == 0 {
				continue
			}
			for _, l := range pool.Labels {
				offered[l] = true
			}
		}
	}
	var out workflows.MinReadyConfig
	for _, l := range cfg.Labels {
		if l.MinReady > 0 && offered[l.Name] {
			out.Labels = append(out.Labels, activities.LabelCount{Label: l.Name, Count: l.MinReady})
		}
	}
	slices.SortFunc(out.Labels, func(a, b activities.LabelCount) int { return strings.Compare(a.Label, b.Label) })
	return out
}

// startMinReady makes sure the deployment's min-ready coordinator runs with the
// current configuration (signal-with-start: started when absent, told the new
// settings when running). Failures are retried until ctx ends.
func startMinReady(ctx context.Context, tc sweepStarter, mr workflows.MinReadyConfig, taskQueue string, logger *slog.Logger) {
	id := names.MinReadyWorkflowID(taskQueue)
	wait := sweepRetryFirst
	for {
		_, err := tc.SignalWithStartWorkflow(ctx, id, workflows.SignalMinReadyConfig, mr,
			client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, workflows.MinReadyWorkflowType,
			workflows.MinReadyInput{TaskQueue: taskQueue, MinReadyConfig: mr})
		if err == nil {
			logger.Info("min-ready coordinator running", "workflow_id", id, "labels", len(mr.Labels))
			return
		}
		if ctx.Err() != nil {
			return
		}
		logger.Warn("starting min-ready coordinator", "workflow_id", id, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}
