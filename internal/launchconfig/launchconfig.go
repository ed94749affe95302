// Package launchconfig is the part of the launcher's setup that needs no Temporal:
// loading the configuration with every driver's section validated, and connecting
// to the ZooKeeper it names. The admin CLI is built on it alone; worker, the
// composition root, adds the drivers themselves, Temporal and the poller.
package launchconfig

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/aws"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/openstack"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/static"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Version is the launcher's version, set at build time with
// -ldflags "-X github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig.Version=…".
var Version = "dev"

// zkConnectTimeout bounds the wait for the first ZooKeeper session.
const zkConnectTimeout = 60 * time.Second

// Load loads and validates a configuration file and its optional secure file,
// drivers' sections included. Every problem is reported at once, as a
// *config.ValidationError.
func Load(path, securePath string) (*config.Config, error) {
	cfg, err := config.LoadWithSecure(path, securePath)
	if err != nil {
		return nil, err
	}
	if err := cfg.ValidateDrivers(DriverValidators()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// DriverValidators maps every driver name a provider's "driver" key may name to
// the check of its section, for config.ValidateDrivers. Adding a driver means
// adding it here and to worker's factories.
func DriverValidators() map[string]func(p *config.Provider) error {
	return map[string]func(p *config.Provider) error{
		"sim":       ValidateSim,
		"aws":       ValidateAWS,
		"static":    ValidateStatic,
		"openstack": ValidateOpenStack,
		// Upstream's fake driver has the OpenStack schema; its providers talk to a
		// real OpenStack-compatible API here.
		"fake": ValidateOpenStack,
	}
}

// ValidateSim checks a sim provider's section.
func ValidateSim(p *config.Provider) error {
	var cfg sim.Config
	if err := p.DecodeDriver(&cfg); err != nil {
		return err
	}
	return p.DriverProblems(cfg.Validate())
}

// ValidateStatic checks a static provider's section; each problem carries the line
// of its key.
func ValidateStatic(p *config.Provider) error {
	var cfg static.Config
	if err := p.DecodeDriver(&cfg); err != nil {
		return err
	}
	root := p.DriverNode()
	var problems []config.Problem
	for _, sp := range static.Problems(cfg.Validate()) {
		problems = append(problems, config.Problem{
			File: p.Pos.File, Line: static.Locate(root, sp.Path), Path: p.Pos.Path + "." + sp.Path, Msg: sp.Msg,
		})
	}
	if len(problems) == 0 {
		return nil
	}
	return &config.ValidationError{Problems: problems}
}

// ValidateAWS checks an aws provider's section.
func ValidateAWS(p *config.Provider) error {
	cfg, err := AWSConfig(p)
	if err != nil {
		return err
	}
	return p.DriverProblems(cfg.Validate(AWSPools(p)))
}

// AWSConfig decodes an aws provider's section; its pools and labels are the
// provider's own, matched by position.
func AWSConfig(p *config.Provider) (aws.Config, error) {
	var cfg aws.Config
	err := p.DecodeDriverPositional(&cfg)
	return cfg, err
}

// AWSPools returns an aws provider's pools as the driver sees them.
func AWSPools(p *config.Provider) []aws.PoolSpec {
	var pools []aws.PoolSpec
	for _, pool := range p.Pools {
		pools = append(pools, aws.PoolSpec{Name: pool.Name, Labels: pool.LabelNames()})
	}
	return pools
}

// ValidateOpenStack checks an openstack (or fake) provider's section; each problem
// carries the line of its key.
func ValidateOpenStack(p *config.Provider) error {
	cfg, err := OpenStackConfig(p)
	if err != nil {
		return err
	}
	var problems []config.Problem
	for _, op := range openstack.Problems(cfg.Validate(OpenStackPools(p))) {
		path := p.Pos.Path
		if op.Path != "" {
			path += "." + op.Path
		}
		problems = append(problems, config.Problem{
			File: p.Pos.File, Line: static.Locate(&p.Raw, op.Path), Path: path, Msg: op.Msg,
		})
	}
	if len(problems) == 0 {
		return nil
	}
	return &config.ValidationError{Problems: problems}
}

// OpenStackConfig decodes an openstack provider's section; its pools and labels
// are the provider's own, matched by position.
func OpenStackConfig(p *config.Provider) (openstack.Config, error) {
	var cfg openstack.Config
	err := p.DecodeDriverPositional(&cfg)
	return cfg, err
}

// OpenStackPools returns an openstack provider's pools as the driver sees them.
func OpenStackPools(p *config.Provider) []openstack.PoolSpec {
	pools := []openstack.PoolSpec{}
	for _, pool := range p.Pools {
		pools = append(pools, openstack.PoolSpec{Name: pool.Name, Labels: pool.LabelNames()})
	}
	return pools
}

// ZooKeeperOptions returns the client options for the configured ZooKeeper
// ensemble: servers, chroot, session timeout and TLS.
func ZooKeeperOptions(cfg *config.Config, logger *slog.Logger) (zookeeper.Options, error) {
	chroot, err := cfg.Chroot()
	if err != nil {
		return zookeeper.Options{}, err
	}
	opts := zookeeper.Options{
		Servers:        cfg.ZooKeeperHosts(),
		Chroot:         chroot,
		SessionTimeout: cfg.ZooKeeperTimeout.Duration(),
		Logger:         logger.With("component", "zookeeper"),
	}
	if t := cfg.ZooKeeperTLS; t != nil {
		opts.TLS = &zookeeper.TLSConfig{CertFile: t.Cert, KeyFile: t.Key, CAFile: t.CA, AllowCNOnly: t.AllowCNOnly}
	}
	return opts, nil
}

// ConnectZooKeeper connects to the configured ZooKeeper ensemble, waiting at
// most a minute (or until ctx ends) for a session. A plain connection is
// allowed and logged as a warning.
func ConnectZooKeeper(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*zookeeper.Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts, err := ZooKeeperOptions(cfg, logger)
	if err != nil {
		return nil, err
	}
	if opts.TLS == nil {
		logger.Warn("zookeeper-tls is not configured; using a plain connection")
	}
	cctx, cancel := context.WithTimeout(ctx, zkConnectTimeout)
	defer cancel()
	zk, err := zookeeper.Connect(cctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to ZooKeeper %v: %w", opts.Servers, err)
	}
	return zk, nil
}
