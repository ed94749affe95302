package worker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/aws"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/openstack"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/static"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Factory builds one kind of driver from a provider section that
// launchconfig.DriverValidators has checked.
type Factory func(ctx context.Context, cfg *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error)

// Factories maps driver names (a provider's "driver" key) to their factories. Wiring
// is explicit: adding a driver means adding it here and its validator to
// launchconfig.DriverValidators.
func Factories() map[string]Factory {
	return map[string]Factory{
		"sim":       newSim,
		"aws":       newAWS,
		"static":    newStatic,
		"openstack": newOpenStack,
		// Upstream's fake driver has the OpenStack schema: it launches on the
		// OpenStack-compatible cloud its cloud key names.
		"fake": newOpenStack,
	}
}

// BuildDrivers builds every configured provider's driver.
func BuildDrivers(ctx context.Context, cfg *config.Config, logger *slog.Logger) (map[string]drivers.Driver, error) {
	factories := Factories()
	out := map[string]drivers.Driver{}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		newDriver, ok := factories[p.Driver]
		if !ok {
			return nil, fmt.Errorf("provider %s: unknown driver %q", p.Name, p.Driver)
		}
		d, err := newDriver(ctx, cfg, p, logger.With("provider", p.Name))
		if err != nil {
			for _, built := range out {
				_ = built.Close()
			}
			return nil, fmt.Errorf("provider %s: %w", p.Name, err)
		}
		out[p.Name] = d
	}
	return out, nil
}

func newSim(_ context.Context, _ *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error) {
	return sim.ParseProvider(p.Name, p.DecodeDriver, sim.WithLogger(logger))
}

func newAWS(ctx context.Context, cfg *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error) {
	ac, err := launchconfig.AWSConfig(p)
	if err != nil {
		return nil, err
	}
	opts := []aws.Option{aws.WithLogger(logger)}
	if poll := cfg.Launcher.PollInterval.Duration(); poll > 0 {
		// The shared instance listing is refreshed at most once per poll interval.
		opts = append(opts, aws.WithPollInterval(poll))
	}
	return aws.New(ctx, p.Name, ac, launchconfig.AWSPools(p), opts...)
}

func newOpenStack(ctx context.Context, cfg *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error) {
	oc, err := launchconfig.OpenStackConfig(p)
	if err != nil {
		return nil, err
	}
	opts := []openstack.Option{openstack.WithLogger(logger)}
	if poll := cfg.Launcher.PollInterval.Duration(); poll > 0 {
		// The shared server listing is refreshed at most once per poll interval.
		opts = append(opts, openstack.WithPollInterval(poll))
	}
	return openstack.New(ctx, p.Name, oc, launchconfig.OpenStackPools(p), opts...)
}

// newStatic builds a static provider's driver. Its hosts are checked every
// cleanup-interval, as upstream re-registers static nodes in its cleanup loop.
func newStatic(_ context.Context, cfg *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error) {
	var sc static.Config
	if err := p.DecodeDriver(&sc); err != nil {
		return nil, err
	}
	defined := map[string]bool{}
	for _, l := range cfg.Labels {
		defined[l.Name] = true
	}
	for pool, labels := range sc.PoolLabels() {
		for _, l := range labels {
			if !defined[l] {
				return nil, fmt.Errorf("pool %s: label %q is not defined in the top-level labels", pool, l)
			}
		}
	}
	opts := []static.Option{static.WithLogger(logger)}
	if iv := cfg.Launcher.CleanupInterval.Duration(); iv > 0 {
		opts = append(opts, static.WithCheckInterval(iv))
	}
	return static.New(p.Name, sc, opts...)
}

// staticSlots returns the slots of a static pool's hosts; ok is false for other drivers.
func staticSlots(p *config.Provider, pool *config.Pool) (int, bool) {
	if p.Driver != "static" {
		return 0, false
	}
	var sc static.Config
	if err := p.DecodeDriver(&sc); err != nil {
		return 0, false
	}
	return sc.PoolSlots()[pool.Name], true
}

// restoreStaticClaims tells every static driver which of its slots node records hold,
// so that a restarted worker never hands out a slot a node still has.
func restoreStaticClaims(ctx context.Context, zk *zookeeper.Client, drv map[string]drivers.Driver, logger *slog.Logger) error {
	claims := map[string][]static.Claim{}
	statics := map[string]*static.Driver{}
	for name, d := range drv {
		if sd, ok := d.(*static.Driver); ok {
			statics[name] = sd
		}
	}
	if len(statics) == 0 {
		return nil
	}
	ids, err := zk.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("listing nodes for static claims: %w", err)
	}
	for _, id := range ids {
		n, err := zk.GetNode(ctx, id)
		if err != nil {
			continue
		}
		if _, ok := statics[n.Provider]; !ok || n.ExternalIDString() == "" {
			continue
		}
		label := ""
		if len(n.Type) > 0 {
			label = n.Type[0]
		}
		claims[n.Provider] = append(claims[n.Provider], static.Claim{ExternalID: n.ExternalIDString(), NodeID: n.ID, Label: label})
	}
	for name, sd := range statics {
		if err := sd.RestoreClaims(claims[name]); err != nil {
			logger.Warn("restoring static claims", "provider", name, "error", err)
		}
	}
	return nil
}

// PoolLabels returns the labels a provider's pool offers: its common "labels" list,
// or for a static provider, whose pools list their labels on their nodes, the labels
// of the pool's nodes.
func PoolLabels(p *config.Provider, pool *config.Pool) []string {
	if p.Driver != "static" {
		return pool.LabelNames()
	}
	var sc static.Config
	if err := p.DecodeDriver(&sc); err != nil {
		return nil
	}
	return sc.PoolLabels()[pool.Name]
}
