package worker

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/poller"
)

// DefaultLauncherName names a deployment in pool ids when the configuration sets no
// launcher hostname.
const DefaultLauncherName = "nodepool-temporal"

// launcherName is the stable name used in pool ids: the configured launcher hostname,
// or DefaultLauncherName. It must be the same for every replica, so it is not the
// machine's host name.
func launcherName(cfg *config.Config) string {
	if cfg.Launcher.Pos.Has(config.KeyHostname) && cfg.Launcher.Hostname != "" {
		return cfg.Launcher.Hostname
	}
	return DefaultLauncherName
}

// Settings derives the activities' settings from the configuration.
func Settings(cfg *config.Config) activities.Settings {
	tq := cfg.Temporal.TaskQueue
	s := activities.Settings{
		LauncherName: launcherName(cfg),
		TaskQueue:    tq,
		PollInterval: cfg.Launcher.PollInterval.Duration(),
		MaxHoldAge:   cfg.MaxHoldAge.Duration(),
		Labels:       map[string]activities.LabelSettings{},
	}
	for _, l := range cfg.Labels {
		s.Labels[l.Name] = activities.LabelSettings{MaxReadyAge: l.MaxReadyAge.Duration()}
	}
	for _, t := range cfg.TenantResourceLimits {
		if s.TenantLimits == nil {
			s.TenantLimits = map[string]drivers.Resources{}
		}
		s.TenantLimits[t.TenantName] = drivers.Resources(t.Limits)
	}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		ps := activities.ProviderSettings{
			Name:           p.Name,
			TaskQueue:      names.ProviderTaskQueue(tq, p.Name),
			LaunchTimeout:  p.LaunchTimeout.Duration(),
			BootTimeout:    p.BootTimeout.Duration(),
			LaunchRetries:  p.LaunchRetries,
			Idle:           p.MaxConcurrency == 0,
			MaxConcurrency: p.MaxConcurrency,
			InlineSteps:    p.RateOr(0) <= 0 && p.Driver != "static",
		}
		for j := range p.Pools {
			pool := &p.Pools[j]
			maxServers := -1
			if pool.Disabled() {
				maxServers = 0
			}
			limits := drivers.Resources{}
			for k, v := range pool.Limits() {
				limits[k] = v
			}
			if slots, ok := staticSlots(p, pool); ok {
				if _, set := limits[drivers.ResourceInstances]; !set {
					// A static pool holds as many nodes as its hosts have slots:
					// requests beyond that wait in the ledger for a slot to free.
					limits[drivers.ResourceInstances] = int64(slots)
				}
			}
			ps.Pools = append(ps.Pools, activities.PoolSettings{
				Name:           pool.Name,
				ID:             names.PoolID(s.LauncherName, p.Name, pool.Name),
				Labels:         PoolLabels(p, pool),
				Priority:       pool.Priority(p),
				MaxServers:     maxServers,
				Limits:         limits,
				NodeAttributes: pool.NodeAttributes,
			})
		}
		s.Providers = append(s.Providers, ps)
	}
	return s
}

// processInstance is this process's pool id suffix: new at every start, kept across
// configuration reloads (Nodepool's launchers also keep their pool workers' ids while
// they run).
var processInstance = newInstance()

func newInstance() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("reading random bytes: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// pollerPools lists the pools for registration.
func pollerPools(s activities.Settings) []poller.Pool {
	var out []poller.Pool
	for _, p := range s.Providers {
		for _, pool := range p.Pools {
			out = append(out, poller.Pool{
				ID: pool.ID, Provider: p.Name, Name: pool.Name,
				Labels: pool.Labels, Priority: pool.Priority, Idle: p.Idle,
			})
		}
	}
	return out
}

// orphanGrace is how long a node that should be locked must be seen unlocked before it
// is treated as orphaned: beyond the ZooKeeper session timeout, so that a lock whose
// worker died can be re-asserted by the resumed workflow first.
func orphanGrace(cfg *config.Config) time.Duration {
	g := 3 * cfg.ZooKeeperTimeout.Duration()
	if g < 15*time.Second {
		g = 15 * time.Second
	}
	return g
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}
