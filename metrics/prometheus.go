package metrics

import (
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// LaunchBuckets are the buckets of nodepool_launch_duration_seconds: from a warm
// simulated cloud (seconds) to a launch-timeout of an hour.
var LaunchBuckets = []float64{1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600}

// Prometheus holds the launcher's Prometheus metrics: the same facts as the statsd
// keys, with labels instead of name parts, plus what only this design knows. It is a
// Recorder; the Collector sets its gauges. Serve it with Handler.
type Prometheus struct {
	reg *prometheus.Registry

	launches   *prometheus.CounterVec
	launchTime *prometheus.HistogramVec
	leaked     *prometheus.CounterVec
	activities *prometheus.CounterVec
	retries    *prometheus.CounterVec
	errors     *prometheus.CounterVec

	mu       sync.Mutex
	reporter bool
	snap     *Snapshot
	phases   map[string]int64
	ledgers  []Ledger
	limits   Limits
}

// Metric names and help texts of the gauges Prometheus computes from the collector's
// state.
var (
	descNodes = prometheus.NewDesc("nodepool_nodes",
		"Nodes by state, provider and label (a node counts once per label), as ZooKeeper records them. Reported by the stats reporter only.",
		[]string{"state", "provider", "label"}, nil)
	descRequests = prometheus.NewDesc("nodepool_requests",
		"Node requests by state. Reported by the stats reporter only.",
		[]string{"state"}, nil)
	descAddressable = prometheus.NewDesc("nodepool_addressable_requests",
		"Node requests whose every label a registered pool supports, per pool. Reported by the stats reporter only.",
		[]string{"provider", "pool"}, nil)
	descPhases = prometheus.NewDesc("nodepool_request_workflows",
		"Open request workflows by phase (NodepoolState search attribute). Reported by the stats reporter only.",
		[]string{"phase"}, nil)
	descWaiting = prometheus.NewDesc("nodepool_ledger_waiting_requests",
		"Requests waiting for capacity in a pool's ledger. Reported by the stats reporter only.",
		[]string{"provider", "pool"}, nil)
	descLedgerUsed = prometheus.NewDesc("nodepool_ledger_used",
		"Capacity a pool's ledger has granted, per resource. Reported by the stats reporter only.",
		[]string{"provider", "pool", "resource"}, nil)
	descLedgerLimit = prometheus.NewDesc("nodepool_ledger_limit",
		"Capacity limits of a pool's ledger, per limited resource. Reported by the stats reporter only.",
		[]string{"provider", "pool", "resource"}, nil)
	descLedgerPaused = prometheus.NewDesc("nodepool_ledger_paused",
		"1 while a request waits for a pool's capacity (the pool registers as paused). Reported by the stats reporter only.",
		[]string{"provider", "pool"}, nil)
	descMaxServers = prometheus.NewDesc("nodepool_provider_max_servers",
		"Sum of the max-servers of a provider's pools, for providers whose pools are all limited.",
		[]string{"provider"}, nil)
	descTenantLimits = prometheus.NewDesc("nodepool_tenant_limits",
		"Configured tenant-resource-limits, per tenant and resource.",
		[]string{"tenant", "resource"}, nil)
	descReporter = prometheus.NewDesc("nodepool_stats_reporter",
		"1 when this process holds the stats election and reports the deployment-wide gauges.",
		nil, nil)
)

// NewPrometheus returns the metrics in a registry of their own, with the Go runtime's
// and the process's collectors.
func NewPrometheus() *Prometheus {
	p := &Prometheus{
		reg: prometheus.NewRegistry(),
		launches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodepool_launches_total",
			Help: "Launch attempts by provider, availability zone, requestor and result (ready or error.<kind>).",
		}, []string{"provider", "az", "requestor", "result"}),
		launchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nodepool_launch_duration_seconds",
			Help:    "Duration of launch attempts by provider, availability zone, requestor and result.",
			Buckets: LaunchBuckets,
		}, []string{"provider", "az", "requestor", "result"}),
		leaked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodepool_provider_leaked_total",
			Help: "Leaked cloud resources the leak sweep deleted, by provider and type (plural, as upstream's statsd key).",
		}, []string{"provider", "type"}),
		activities: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodepool_activity_executions_total",
			Help: "Temporal activity executions run by this process, by activity type and outcome (completed or failed).",
		}, []string{"activity", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodepool_activity_retries_total",
			Help: "Temporal activity executions that were retries (attempt > 1), by activity type.",
		}, []string{"activity"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodepool_stats_errors_total",
			Help: "Failed reads of the stats collector, by source (zookeeper or temporal).",
		}, []string{"source"}),
	}
	p.reg.MustRegister(p.launches, p.launchTime, p.leaked, p.activities, p.retries, p.errors,
		stateCollector{p},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return p
}

// Registry returns the registry, for registering more collectors.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

// Handler serves the metrics in Prometheus's exposition formats.
func (p *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{})
}

// Launch implements Recorder.
func (p *Prometheus) Launch(provider, az, requestor, result string, d time.Duration) {
	p.launches.WithLabelValues(provider, az, requestor, result).Inc()
	p.launchTime.WithLabelValues(provider, az, requestor, result).Observe(d.Seconds())
}

// Leaked implements Recorder.
func (p *Prometheus) Leaked(provider, resourceType string) {
	p.leaked.WithLabelValues(provider, PluralType(resourceType)).Inc()
}

// Activity implements Recorder.
func (p *Prometheus) Activity(activityType string, attempt int32, failed bool) {
	outcome := "completed"
	if failed {
		outcome = "failed"
	}
	p.activities.WithLabelValues(activityType, outcome).Inc()
	if attempt > 1 {
		p.retries.WithLabelValues(activityType).Inc()
	}
}

// readFailed counts a failed read of the collector.
func (p *Prometheus) readFailed(source string) { p.errors.WithLabelValues(source).Inc() }

// setReporter records whether this process reports the deployment-wide gauges; a
// process that stops reporting drops them, so that only the reporter exposes them.
func (p *Prometheus) setReporter(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reporter = on
	if !on {
		p.snap, p.phases, p.ledgers = nil, nil, nil
	}
}

func (p *Prometheus) setSnapshot(s *Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.snap = s
}

func (p *Prometheus) setFacts(phases map[string]int64, ledgers []Ledger) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if phases != nil {
		p.phases = phases
	}
	if ledgers != nil {
		p.ledgers = ledgers
	}
}

func (p *Prometheus) setLimits(l Limits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limits = l
}

// stateCollector exposes the collector's latest state as constant metrics, so that a
// scrape sees one consistent snapshot.
type stateCollector struct{ p *Prometheus }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodes, descRequests, descAddressable, descPhases, descWaiting,
		descLedgerUsed, descLedgerLimit, descLedgerPaused, descMaxServers, descTenantLimits, descReporter} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	p.mu.Lock()
	reporter, snap, phases, ledgers, limits := p.reporter, p.snap, p.phases, p.ledgers, p.limits
	p.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descReporter, boolValue(reporter))
	for provider, n := range limits.MaxServers {
		gauge(descMaxServers, float64(n), provider)
	}
	for tenant, res := range limits.Tenants {
		for r, n := range res {
			gauge(descTenantLimits, float64(n), tenant, r)
		}
	}
	if snap != nil {
		for k, n := range snap.Nodes {
			gauge(descNodes, float64(n), k.State, k.Provider, k.Label)
		}
		for state, n := range snap.Requests {
			gauge(descRequests, float64(n), state)
		}
		for k, n := range snap.Addressable {
			gauge(descAddressable, float64(n), k.Provider, k.Pool)
		}
	}
	for phase, n := range phases {
		gauge(descPhases, float64(n), phase)
	}
	for _, l := range ledgers {
		gauge(descWaiting, float64(l.Waiting), l.Provider, l.Pool)
		gauge(descLedgerPaused, boolValue(l.Paused), l.Provider, l.Pool)
		for _, r := range slices.Sorted(maps.Keys(l.Used)) {
			gauge(descLedgerUsed, float64(l.Used[r]), l.Provider, l.Pool, r)
		}
		for _, r := range slices.Sorted(maps.Keys(l.Limits)) {
			gauge(descLedgerLimit, float64(l.Limits[r]), l.Provider, l.Pool, r)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
