package metrics

import "context"

// Facts are what only this design knows about the deployment's launches: the phases
// of the open request workflows and the state of the pools' capacity ledgers. The
// launcher answers them from Temporal (package metrics/facts); tests fake them.
type Facts interface {
	// RequestPhases counts the open request workflows by phase (their NodepoolState
	// search attribute: "planning", "waiting-for-capacity", "launching", ...). Open
	// workflows without a phase of their own count under "other".
	RequestPhases(ctx context.Context) (map[string]int64, error)
	// Ledgers returns the status of every configured pool's capacity ledger that runs.
	Ledgers(ctx context.Context) ([]Ledger, error)
}

// Ledger is one pool's capacity ledger, as its status query reports it.
type Ledger struct {
	Provider string
	Pool     string
	// Waiting is the number of requests waiting for capacity.
	Waiting int
	// Used and Limits are the pool's capacity in Nodepool's resource names
	// ("instances", "cores", "ram"); an absent limit is unlimited.
	Used   map[string]int64
	Limits map[string]int64
	// Paused is true while a request waits: the pool registers as paused.
	Paused bool
}

// Limits are the configured limits upstream reports as gauges from every launcher.
type Limits struct {
	// MaxServers is, per provider, the sum of its pools' max-servers
	// (nodepool.provider.<provider>.max_servers). Providers with an unlimited pool are
	// left out: upstream sends "inf", which statsd servers reject.
	MaxServers map[string]int64
	// Tenants is, per tenant, its tenant-resource-limits in Nodepool's resource names
	// (nodepool.tenant_limits.<tenant>.<resource>); absent resources are unlimited and
	// left out.
	Tenants map[string]map[string]int64
}
