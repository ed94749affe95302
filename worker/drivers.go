package worker

import (
	"context"
	"fmt"
	"log/slog"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/aws"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
)

// Factory builds and validates one kind of driver from a provider section.
type Factory struct {
	// Validate reports every problem of the provider's driver keys.
	Validate func(p *config.Provider) error
	// New builds the driver.
	New func(ctx context.Context, cfg *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error)
}

// Factories maps driver names (a provider's "driver" key) to their factories. Wiring
// is explicit: adding a driver means adding it here.
func Factories() map[string]Factory {
	return map[string]Factory{
		"sim": {Validate: validateSim, New: newSim},
		"aws": {Validate: validateAWS, New: newAWS},
	}
}

// DriverValidators returns the validators for config.ValidateDrivers.
func DriverValidators() map[string]func(p *config.Provider) error {
	out := map[string]func(p *config.Provider) error{}
	for name, f := range Factories() {
		out[name] = f.Validate
	}
	return out
}

// BuildDrivers builds every configured provider's driver.
func BuildDrivers(ctx context.Context, cfg *config.Config, logger *slog.Logger) (map[string]drivers.Driver, error) {
	factories := Factories()
	out := map[string]drivers.Driver{}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		f, ok := factories[p.Driver]
		if !ok {
			return nil, fmt.Errorf("provider %s: unknown driver %q", p.Name, p.Driver)
		}
		d, err := f.New(ctx, cfg, p, logger.With("provider", p.Name))
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

// decodePositional decodes a provider's driver keys strictly into v, whose pools and
// labels are matched by position: the pool and label names (common keys) are removed.
func decodePositional(p *config.Provider, v any) error {
	n := p.DriverNode()
	for _, pool := range seqItems(mapValue(n, config.KeyPools)) {
		removeKey(pool, config.KeyName)
		for _, label := range seqItems(mapValue(pool, "labels")) {
			removeKey(label, config.KeyName)
		}
	}
	return config.DecodeStrict(p.Pos.File, p.Pos.Path, n, v)
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func seqItems(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func removeKey(n *yaml.Node, key string) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
}

func validateSim(p *config.Provider) error {
	var cfg sim.Config
	if err := p.DecodeDriver(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return prefixed(p, err)
	}
	return nil
}

func newSim(_ context.Context, _ *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error) {
	return sim.ParseProvider(p.Name, p.DecodeDriver, sim.WithLogger(logger))
}

// prefixed locates a driver's validation error at its provider section.
func prefixed(p *config.Provider, err error) error {
	var problems []config.Problem
	for _, e := range unjoin(err) {
		problems = append(problems, config.Problem{File: p.Pos.File, Line: p.Pos.Line, Path: p.Pos.Path, Msg: e.Error()})
	}
	return &config.ValidationError{Problems: problems}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

func awsPools(p *config.Provider) []aws.PoolSpec {
	var pools []aws.PoolSpec
	for _, pool := range p.Pools {
		pools = append(pools, aws.PoolSpec{Name: pool.Name, Labels: pool.LabelNames()})
	}
	return pools
}

func validateAWS(p *config.Provider) error {
	var cfg aws.Config
	if err := decodePositional(p, &cfg); err != nil {
		return err
	}
	if err := cfg.Validate(awsPools(p)); err != nil {
		return prefixed(p, err)
	}
	return nil
}

func newAWS(ctx context.Context, cfg *config.Config, p *config.Provider, logger *slog.Logger) (drivers.Driver, error) {
	var ac aws.Config
	if err := decodePositional(p, &ac); err != nil {
		return nil, err
	}
	opts := []aws.Option{aws.WithLogger(logger)}
	if poll := cfg.Launcher.PollInterval.Duration(); poll > 0 {
		// The shared instance listing is refreshed at most once per poll interval.
		opts = append(opts, aws.WithPollInterval(poll))
	}
	return aws.New(ctx, p.Name, ac, awsPools(p), opts...)
}
