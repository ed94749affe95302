package activities

import (
	"slices"
	"sort"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// Settings is the part of the launcher configuration that activities need. The worker
// builds it from nodepool.yaml; activities never read the file themselves.
type Settings struct {
	// LauncherName prefixes pool ids ("<name>-PoolWorker.<provider>-<pool>"). It is the
	// same for every replica of one deployment, so that declines survive restarts.
	LauncherName string
	// TaskQueue is the main task queue; provider queues derive from it.
	TaskQueue string
	// PollInterval caps the timer between state-machine steps.
	PollInterval time.Duration
	// MaxHoldAge caps how long a node may stay held (0 = unlimited).
	MaxHoldAge time.Duration
	// Labels maps label names to their settings; a label absent here is unknown.
	Labels map[string]LabelSettings
	// Providers in configuration order.
	Providers []ProviderSettings
	// TenantLimits caps what the nodes of each tenant may use across all providers
	// (tenant-resource-limits), in Nodepool's resource names.
	TenantLimits map[string]drivers.Resources
}

// LabelSettings are the per-label settings of the top-level labels section.
type LabelSettings struct {
	MaxReadyAge time.Duration
}

// ProviderSettings are one provider's settings.
type ProviderSettings struct {
	Name          string
	TaskQueue     string
	LaunchTimeout time.Duration
	// BootTimeout bounds the time from an instance's creation to ready.
	BootTimeout   time.Duration
	LaunchRetries int
	// Idle is true for a provider with max-concurrency 0: as in Nodepool, its pools
	// neither take nor decline requests.
	Idle bool
	// MaxConcurrency caps the provider's launches in progress across all workers
	// (0 or less: unlimited; an idle provider is marked Idle instead).
	MaxConcurrency int
	// InlineSteps is true when the provider's driver steps may also run in the worker
	// that runs the workflow (local activities): the provider has no rate for the
	// Temporal matching service to enforce, and its driver keeps no claims that live in
	// one process only (unlike the static driver's).
	InlineSteps bool
	Pools       []PoolSettings
}

// PoolSettings are one pool's settings.
type PoolSettings struct {
	Name string
	// ID is the pool worker id used in declined_by and in the pool registration.
	ID       string
	Labels   []string
	Priority int
	// MaxServers is -1 when unlimited; 0 disables the pool.
	MaxServers int
	// Limits are the pool's resource limits in Nodepool's names (absent = unlimited).
	Limits         drivers.Resources
	NodeAttributes map[string]any
}

// Provider returns the settings of the named provider.
func (s *Settings) Provider(name string) (*ProviderSettings, bool) {
	for i := range s.Providers {
		if s.Providers[i].Name == name {
			return &s.Providers[i], true
		}
	}
	return nil, false
}

// Pool returns the settings of the named pool of the provider.
func (s *Settings) Pool(provider, pool string) (*ProviderSettings, *PoolSettings, bool) {
	p, ok := s.Provider(provider)
	if !ok {
		return nil, nil, false
	}
	for i := range p.Pools {
		if p.Pools[i].Name == pool {
			return p, &p.Pools[i], true
		}
	}
	return p, nil, false
}

// PoolIDs returns every pool id of this launcher, sorted.
func (s *Settings) PoolIDs() []string {
	var ids []string
	for _, p := range s.Providers {
		for _, pool := range p.Pools {
			ids = append(ids, pool.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func (p *PoolSettings) offers(label string) bool { return slices.Contains(p.Labels, label) }
