package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"go.temporal.io/sdk/client"
	tworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/sync/errgroup"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/poller"
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
}

// LoadConfig loads and validates a configuration file, with its drivers' sections.
// Every problem is reported at once. It is launchconfig.Load.
func LoadConfig(path, securePath string) (*config.Config, error) {
	return launchconfig.Load(path, securePath)
}

// Run runs the launcher until ctx ends, then drains and stops.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
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
	for _, l := range cfg.Labels {
		if l.MinReady > 0 {
			logger.Warn("min-ready is not supported by this launcher; no nodes are launched ahead of requests", "label", l.Name, "min_ready", l.MinReady)
		}
	}

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

	g, gctx := errgroup.WithContext(ctx)
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
		acts := activities.New(zk, drv, settings, tc, logger.With("component", "activities"))
		workers := newWorkers(tc, cfg, settings, acts, opts.StopTimeout)
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
			<-gctx.Done()
			logger.Info("draining Temporal workers")
			for _, w := range workers {
				w.Stop()
			}
			return nil
		})
	}
	if role == RoleAll || role == RolePoller {
		p := poller.New(poller.Options{
			ZK:               zk,
			Temporal:         tc,
			TaskQueue:        settings.TaskQueue,
			Pools:            pollerPools(settings),
			Hostname:         hostname(),
			Version:          Version,
			Policy:           settings.Policy(orphanGrace(cfg)),
			ScanInterval:     cfg.Launcher.DeleteInterval.Duration(),
			PollInterval:     settings.PollInterval,
			SearchAttributes: searchAttrs,
			Register:         true,
			Logger:           logger.With("component", "poller"),
		})
		g.Go(func() error { return p.Run(gctx) })
	}
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

func newWorkers(tc client.Client, cfg *config.Config, s activities.Settings, acts *activities.Activities, stop time.Duration) []tworker.Worker {
	main := tworker.New(tc, s.TaskQueue, tworker.Options{WorkerStopTimeout: stop})
	main.RegisterWorkflowWithOptions(workflows.HandleRequest, workflow.RegisterOptions{Name: workflows.RequestWorkflowType})
	main.RegisterWorkflowWithOptions(workflows.DeleteNode, workflow.RegisterOptions{Name: workflows.DeleteWorkflowType})
	main.RegisterWorkflowWithOptions(workflows.PoolLedger, workflow.RegisterOptions{Name: workflows.LedgerWorkflowType})
	main.RegisterWorkflowWithOptions(workflows.LeakSweep, workflow.RegisterOptions{Name: workflows.SweepWorkflowType})
	main.RegisterActivity(acts)
	out := []tworker.Worker{main}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		// Driver steps of a provider run on their own task queue, whose activity rate
		// the Temporal matching service enforces across every worker replica.
		opts := tworker.Options{WorkerStopTimeout: stop, DisableWorkflowWorker: true}
		if rate := p.RateOr(0); rate > 0 {
			opts.TaskQueueActivitiesPerSecond = rate
		}
		w := tworker.New(tc, names.ProviderTaskQueue(s.TaskQueue, p.Name), opts)
		w.RegisterActivity(acts)
		out = append(out, w)
	}
	return out
}

// ConnectZooKeeper connects to the configured ZooKeeper ensemble. It is
// launchconfig.ConnectZooKeeper.
func ConnectZooKeeper(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*zookeeper.Client, error) {
	return launchconfig.ConnectZooKeeper(ctx, cfg, logger)
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
