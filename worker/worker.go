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
// Every problem is reported at once.
func LoadConfig(path, securePath string) (*config.Config, error) {
	cfg, err := config.LoadWithSecure(path, securePath)
	if err != nil {
		return nil, err
	}
	if err := cfg.ValidateDrivers(DriverValidators()); err != nil {
		return nil, err
	}
	return cfg, nil
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

	zk, err := ConnectZooKeeper(ctx, cfg, logger)
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

// ConnectZooKeeper connects to the configured ZooKeeper ensemble.
func ConnectZooKeeper(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*zookeeper.Client, error) {
	chroot, err := cfg.Chroot()
	if err != nil {
		return nil, err
	}
	opts := zookeeper.Options{
		Servers:        cfg.ZooKeeperHosts(),
		Chroot:         chroot,
		SessionTimeout: cfg.ZooKeeperTimeout.Duration(),
		Logger:         logger.With("component", "zookeeper"),
	}
	if t := cfg.ZooKeeperTLS; t != nil {
		opts.TLS = &zookeeper.TLSConfig{CertFile: t.Cert, KeyFile: t.Key, CAFile: t.CA}
	} else {
		logger.Warn("zookeeper-tls is not configured; using a plain connection")
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(cctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to ZooKeeper %v: %w", opts.Servers, err)
	}
	return zk, nil
}
