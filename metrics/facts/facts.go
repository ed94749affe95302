// Package facts answers the metrics collector's questions from what the launcher
// knows beyond ZooKeeper: the configured limits, and the Temporal workflows (request
// workflows by phase through the visibility API, each pool ledger's status query).
// It is kept apart from package metrics so that metrics, which activities may import
// for its Recorder, does not depend on the workflows or the configuration.
package facts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/metrics"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
)

// Phases are the phases of a request workflow counted one by one; open workflows in
// none of them (not yet planned, or finishing with an outcome) count as PhaseOther.
var Phases = []string{
	workflows.PhasePlanning, workflows.PhaseDeferred, workflows.PhaseWaiting, workflows.PhaseAccepting,
	workflows.PhaseLaunching, workflows.PhaseFulfilling, workflows.PhaseCleaningUp,
}

// PhaseOther counts open request workflows in no phase of Phases.
const PhaseOther = "other"

// DefaultQueryTimeout bounds one ledger status query.
const DefaultQueryTimeout = 5 * time.Second

// Client is the part of the Temporal client the facts need.
type Client interface {
	CountWorkflow(ctx context.Context, request *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error)
	QueryWorkflow(ctx context.Context, workflowID string, runID string, queryType string, args ...any) (converter.EncodedValue, error)
}

// Pool names a configured provider pool.
type Pool struct{ Provider, Name string }

// Temporal implements metrics.Facts with a Temporal client.
type Temporal struct {
	Client    Client
	Namespace string
	// TaskQueue is the launcher's main task queue: workflows of other deployments
	// sharing the namespace are not counted, and ledger ids derive from it.
	TaskQueue string
	// Pools are the pools whose ledgers are queried.
	Pools []Pool
	// QueryTimeout bounds each ledger query (DefaultQueryTimeout when zero).
	QueryTimeout time.Duration
}

var _ metrics.Facts = (*Temporal)(nil)

// openRequests is the visibility query of the deployment's open request workflows.
func (t *Temporal) openRequests() string {
	return fmt.Sprintf("WorkflowType = %s AND ExecutionStatus = 'Running' AND TaskQueue = %s",
		quote(workflows.RequestWorkflowType), quote(t.TaskQueue))
}

// RequestPhases counts the open request workflows, in total and per phase (one count
// per phase: the visibility API groups by execution status only). When the per-phase
// counts fail (a server without the NodepoolState search attribute) every open
// workflow counts as PhaseOther and the error is returned with that answer.
func (t *Temporal) RequestPhases(ctx context.Context) (map[string]int64, error) {
	total, err := t.count(ctx, t.openRequests())
	if err != nil {
		return nil, fmt.Errorf("counting request workflows: %w", err)
	}
	out := make(map[string]int64, len(Phases)+1)
	var sum int64
	for _, phase := range Phases {
		n, err := t.count(ctx, t.openRequests()+" AND "+workflows.SAState.GetName()+" = "+quote(phase))
		if err != nil {
			return map[string]int64{PhaseOther: total}, fmt.Errorf("counting request workflows in phase %s: %w", phase, err)
		}
		out[phase] = n
		sum += n
	}
	out[PhaseOther] = max(total-sum, 0)
	return out, nil
}

func (t *Temporal) count(ctx context.Context, query string) (int64, error) {
	resp, err := t.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: t.Namespace, Query: query,
	})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}

// Ledgers queries the status of every pool's ledger. Pools whose ledger was never
// started are left out; a query that fails otherwise fails the answer.
func (t *Temporal) Ledgers(ctx context.Context) ([]metrics.Ledger, error) {
	timeout := t.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	out := []metrics.Ledger{}
	var errs []error
	for _, p := range t.Pools {
		id := names.LedgerWorkflowID(t.TaskQueue, p.Provider, p.Name)
		qctx, cancel := context.WithTimeout(ctx, timeout)
		v, err := t.Client.QueryWorkflow(qctx, id, "", workflows.QueryStatus)
		cancel()
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue
		}
		var st workflows.LedgerStatus
		if err == nil {
			err = v.Get(&st)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("querying ledger %s: %w", id, err))
			continue
		}
		out = append(out, metrics.Ledger{
			Provider: p.Provider, Pool: p.Name, Waiting: st.WaitingCount,
			Used: st.Used, Limits: st.Limits, Paused: st.Paused,
		})
	}
	return out, errors.Join(errs...)
}

// quote renders s as a string literal of the visibility query language.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Limits returns the configured limits upstream reports: per provider the sum of its
// pools' max-servers (providers with an unlimited pool are left out; disabled pools
// count nothing), and every tenant's finite tenant-resource-limits.
func Limits(cfg *config.Config) metrics.Limits {
	l := metrics.Limits{MaxServers: map[string]int64{}, Tenants: map[string]map[string]int64{}}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		var sum int64
		unlimited := false
		for j := range p.Pools {
			n, ok := p.Pools[j].Limits()[config.ResourceInstances]
			switch {
			case !ok:
				unlimited = true
			case n > 0:
				sum += n
			}
		}
		if !unlimited {
			l.MaxServers[p.Name] += sum
		}
	}
	for _, t := range cfg.TenantResourceLimits {
		if len(t.Limits) == 0 {
			continue
		}
		res := l.Tenants[t.TenantName]
		if res == nil {
			res = map[string]int64{}
			l.Tenants[t.TenantName] = res
		}
		for k, v := range t.Limits {
			res[k] = v
		}
	}
	return l
}

// Pools returns every configured provider pool.
func Pools(cfg *config.Config) []Pool {
	var out []Pool
	for i := range cfg.Providers {
		for j := range cfg.Providers[i].Pools {
			out = append(out, Pool{Provider: cfg.Providers[i].Name, Name: cfg.Providers[i].Pools[j].Name})
		}
	}
	return out
}
