package worker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/aws"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
)

// Factory builds one kind of driver from a provider section that
// launchconfig.DriverValidators has checked.
type Factory func(ctx context.Context, cfg *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error)

// Factories maps driver names (a provider's "driver" key) to their factories. Wiring
// is explicit: adding a driver means adding it here and its validator to
// launchconfig.DriverValidators.
func Factories() map[string]Factory {
	return map[string]Factory{
		"sim": newSim,
		"aws": newAWS,
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
