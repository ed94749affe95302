package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/inspect"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// explainTimeout bounds each Temporal call of explain, the connection included.
var explainTimeout = 5 * time.Second

// defaultLauncherName names a deployment's pools when the configuration sets no
// launcher hostname; the launcher uses the same rule.
const defaultLauncherName = "nodepool-temporal"

// Verdicts on a pool.
const (
	verdictSelected     = "selected"      // the pool the request goes to
	verdictCandidate    = "candidate"     // could serve it, after the selected one
	verdictDeclined     = "declined"      // in declined_by
	verdictWouldDecline = "would decline" // one of ours that cannot serve it
	verdictIdle         = "idle"          // one of ours that takes no requests
	verdictMayServe     = "may serve"     // another launcher's, offering every label
	verdictCannotServe  = "cannot serve"  // another launcher's, missing labels
)

// explanation is everything explain knows about a request.
type explanation struct {
	RequestID string `json:"request_id"`
	// Summary says in one sentence where the request stands and why.
	Summary  string         `json:"summary"`
	Request  *requestFacts  `json:"request"`
	Pools    []poolVerdict  `json:"pools"`
	Capacity *capacityFacts `json:"capacity,omitempty"`
	Tenant   *tenantFacts   `json:"tenant,omitempty"`
	Workflow *workflowFacts `json:"workflow,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
	req      *zookeeper.NodeRequest
	ledger   *inspect.LedgerStatus
}

// requestFacts is the request as ZooKeeper has it.
type requestFacts struct {
	State            string        `json:"state"`
	Age              string        `json:"age"`
	NodeTypes        []string      `json:"node_types"`
	Provider         *string       `json:"provider"`
	Tenant           *string       `json:"tenant_name"`
	Requestor        *string       `json:"requestor"`
	EventID          *string       `json:"event_id"`
	RelativePriority int           `json:"relative_priority"`
	DeclinedBy       []string      `json:"declined_by"`
	Nodes            []requestNode `json:"nodes"`
	Locked           bool          `json:"locked"`
	LockHolder       string        `json:"lock_holder,omitempty"`
}

// requestNode is a node recorded in the request.
type requestNode struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	State string `json:"state"`
}

// poolVerdict is what one pool does with the request.
type poolVerdict struct {
	ID         string   `json:"id"`
	Provider   string   `json:"provider"`
	Pool       string   `json:"pool"`
	Priority   int      `json:"priority"`
	Ours       bool     `json:"ours"`
	Registered bool     `json:"registered"`
	Paused     bool     `json:"paused"`
	Labels     []string `json:"labels"`
	Verdict    string   `json:"verdict"`
	Reason     string   `json:"reason,omitempty"`
	order      int
	// why is the configuration's reason a pool in declined_by declines.
	why string
}

// capacityFacts is a pool ledger's view of the pool.
type capacityFacts struct {
	Provider   string          `json:"provider"`
	Pool       string          `json:"pool"`
	WorkflowID string          `json:"workflow_id"`
	Resources  []resourceFacts `json:"resources"`
	Waiting    int             `json:"waiting"`
	// Position is the request's place among the waiting requests (1 is next), 0
	// when it does not wait or is beyond the first hundred.
	Position int  `json:"position"`
	Granted  int  `json:"granted"`
	Nodes    int  `json:"nodes"`
	Paused   bool `json:"paused"`
}

// resourceFacts is one resource's usage against its limit (nil: unlimited).
type resourceFacts struct {
	Name  string `json:"name"`
	Used  int64  `json:"used"`
	Limit *int64 `json:"limit"`
	// Need is what the request needs of it, when known.
	Need *int64 `json:"need,omitempty"`
}

// tenantFacts is the request's tenant against its tenant-resource-limits.
type tenantFacts struct {
	Name      string          `json:"name"`
	Resources []resourceFacts `json:"resources"`
	// Over lists the resources the request would take past the limit.
	Over []string `json:"over,omitempty"`
}

// workflowFacts is what Temporal knows of the request's workflow.
type workflowFacts struct {
	ID        string                 `json:"id"`
	WebURL    string                 `json:"web_url"`
	Execution *inspect.Execution     `json:"execution,omitempty"`
	Status    *inspect.RequestStatus `json:"status,omitempty"`
}

// cmdExplain explains why a request waits or failed.
func cmdExplain(ctx context.Context, s *session, fs *flag.FlagSet, args []string) error {
	web := os.Getenv(inspect.EnvWebURL)
	if web == "" {
		web = inspect.DefaultWebURL
	}
	webURL := fs.String("web-url", web, "Temporal Web's address, for the link to the workflow ($"+inspect.EnvWebURL+")")
	pos, err := exactArgs(fs, args, "REQUEST")
	if err != nil {
		return err
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	x, err := s.explain(ctx, pos[0], *webURL)
	if err != nil {
		return err
	}
	if x.Request == nil && (x.Workflow == nil || x.Workflow.Execution == nil) {
		fmt.Fprintf(s.stderr, "Request id %s not found\n", pos[0])
		for _, n := range x.Notes {
			fmt.Fprintln(s.stderr, "note:", n)
		}
		return errReported
	}
	if s.g.json {
		return s.printJSON(x)
	}
	x.write(s.stdout)
	return nil
}

// explain gathers the facts about request id: ZooKeeper's first, then Temporal's
// when it answers.
func (s *session) explain(ctx context.Context, id, webURL string) (*explanation, error) {
	x := &explanation{RequestID: id, Pools: []poolVerdict{}}
	req, err := s.zk.GetRequest(ctx, id)
	var derr *zookeeper.DecodeError
	switch {
	case errors.Is(err, zookeeper.ErrNotFound):
		x.note("the request is not in ZooKeeper: Zuul deleted it, or it never existed")
	case errors.As(err, &derr):
		x.note(fmt.Sprintf("the request's record does not decode: %v", derr))
	case err != nil:
		return nil, err
	default:
		x.req = req
		if err := s.requestFacts(ctx, x); err != nil {
			return nil, err
		}
	}
	if x.req != nil {
		if err := s.poolVerdicts(ctx, x); err != nil {
			return nil, err
		}
		if err := s.tenantFacts(ctx, x); err != nil {
			return nil, err
		}
	}
	s.temporalFacts(ctx, x, webURL)
	x.markSelected()
	x.Summary = x.summarize()
	return x, nil
}

func (x *explanation) note(n string) { x.Notes = append(x.Notes, n) }

// requestFacts fills in the request, its nodes and its lock.
func (s *session) requestFacts(ctx context.Context, x *explanation) error {
	r := x.req
	f := &requestFacts{
		State: string(r.State), Age: ageSince(r.StateTime, time.Now()),
		NodeTypes: append([]string{}, r.NodeTypes...), Provider: r.Provider, Tenant: r.TenantName,
		Requestor: r.Requestor, EventID: r.EventID, RelativePriority: r.RelativePriority,
		DeclinedBy: append([]string{}, r.DeclinedBy...), Nodes: []requestNode{},
	}
	for i, nid := range r.Nodes {
		rn := requestNode{ID: nid, State: "gone"}
		if i < len(r.NodeTypes) {
			rn.Label = r.NodeTypes[i]
		}
		n, err := s.zk.GetNode(ctx, nid)
		var derr *zookeeper.DecodeError
		switch {
		case err == nil:
			rn.State = string(n.State)
		case errors.As(err, &derr):
			rn.State = stateMalformed
		case !errors.Is(err, zookeeper.ErrNotFound):
			return err
		}
		f.Nodes = append(f.Nodes, rn)
	}
	locked, holder, err := s.zk.LockHolder(ctx, zookeeper.RequestLockPath(r.ID))
	if err != nil {
		return err
	}
	f.Locked, f.LockHolder = locked, holder
	x.Request = f
	return nil
}

// launcherName is the name this deployment's pool ids start with: the configured
// launcher hostname, or defaultLauncherName.
func launcherName(cfg *config.Config) string {
	if cfg.Launcher.Pos.Has(config.KeyHostname) && cfg.Launcher.Hostname != "" {
		return cfg.Launcher.Hostname
	}
	return defaultLauncherName
}

// poolVerdicts judges every pool: this launcher's from the configuration, as the
// launcher plans a request, and the other launchers' from their registrations.
func (s *session) poolVerdicts(ctx context.Context, x *explanation) error {
	r := x.req
	declined := map[string]bool{}
	for _, d := range r.DeclinedBy {
		declined[d] = true
	}
	registered := map[string]zookeeper.PoolComponent{}
	regs, err := s.zk.ListPools(ctx)
	if err != nil {
		return err
	}
	live := make([]string, 0, len(regs))
	for _, p := range regs {
		registered[p.ID] = p
		live = append(live, p.ID)
	}
	seen := map[string]bool{}
	launcher := launcherName(s.cfg)
	order := 0
	for i := range s.cfg.Providers {
		p := &s.cfg.Providers[i]
		for j := range p.Pools {
			pool := &p.Pools[j]
			order++
			v := poolVerdict{
				ID: names.PoolID(launcher, p.Name, pool.Name), Provider: p.Name, Pool: pool.Name,
				Priority: pool.Priority(p), Ours: true, Labels: pool.LabelNames(), order: order,
			}
			// Every process of this launcher registers the pool under its own id.
			for _, reg := range regs {
				if names.IsPoolInstance(reg.ID, v.ID) {
					seen[reg.ID] = true
					v.Registered, v.Paused = true, v.Paused || reg.Paused
				}
			}
			limits := pool.Limits()
			switch {
			case p.MaxConcurrency == 0:
				v.Verdict, v.Reason = verdictIdle, "the provider takes no requests (max-concurrency 0)"
			case pool.Disabled():
				v.Verdict, v.Reason = verdictWouldDecline, "the pool is disabled by max-servers 0"
			case len(missingLabels(v.Labels, r.NodeTypes)) > 0:
				v.Verdict, v.Reason = verdictWouldDecline,
					"node type(s) "+strings.Join(missingLabels(v.Labels, r.NodeTypes), ", ")+" not offered"
			case len(r.NodeTypes) == 0:
				v.Verdict, v.Reason = verdictWouldDecline, "the request has no node types"
			case hasLimit(limits, config.ResourceInstances) && int64(len(r.NodeTypes)) > limits[config.ResourceInstances]:
				v.Verdict, v.Reason = verdictWouldDecline, fmt.Sprintf("%d nodes exceed max-servers %d",
					len(r.NodeTypes), limits[config.ResourceInstances])
			default:
				v.Verdict = verdictCandidate
				if !v.Registered {
					v.Reason = "not registered: no poller of this launcher runs"
				}
			}
			if names.PoolDeclined(r.DeclinedBy, v.ID, live) {
				// Why it declined, as far as the configuration tells; a pool that
				// could serve the request declined after a failed launch or a
				// refused grant, which the workflow's reason names.
				if v.Verdict == verdictWouldDecline || v.Verdict == verdictIdle {
					v.why = v.Reason
				}
				v.Verdict, v.Reason = verdictDeclined, "in declined_by"
				if v.why != "" {
					v.Reason += ": " + v.why
				}
			}
			x.Pools = append(x.Pools, v)
		}
	}
	for _, reg := range regs {
		if seen[reg.ID] {
			continue
		}
		order++
		v := poolVerdict{
			ID: reg.ID, Provider: reg.ProviderName, Pool: reg.Name, Priority: reg.Priority, Registered: true,
			Paused: reg.Paused, Labels: append([]string{}, reg.SupportedLabels...), order: order,
		}
		switch miss := missingLabels(v.Labels, r.NodeTypes); {
		case declined[v.ID]:
			v.Verdict, v.Reason = verdictDeclined, "in declined_by"
		case len(miss) > 0:
			v.Verdict, v.Reason = verdictCannotServe, "node type(s) "+strings.Join(miss, ", ")+" not offered"
		default:
			v.Verdict = verdictMayServe
			if v.Paused {
				v.Reason = "paused: waiting for quota"
			}
		}
		x.Pools = append(x.Pools, v)
	}
	// The launcher's order of preference: the requested provider, then priority,
	// then the order of the configuration.
	preferred := ""
	if r.Provider != nil {
		preferred = *r.Provider
	}
	sort.SliceStable(x.Pools, func(i, j int) bool {
		a, b := x.Pools[i], x.Pools[j]
		if a.Ours != b.Ours {
			return a.Ours
		}
		if (a.Provider == preferred) != (b.Provider == preferred) {
			return a.Provider == preferred
		}
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		return a.order < b.order
	})
	return nil
}

// markSelected marks the pool the request goes to: the one its workflow planned
// for, else this launcher's first candidate.
func (x *explanation) markSelected() {
	provider, pool := "", ""
	if x.Workflow != nil && x.Workflow.Status != nil {
		provider, pool = x.Workflow.Status.Provider, x.Workflow.Status.Pool
	}
	for i := range x.Pools {
		v := &x.Pools[i]
		if !v.Ours || v.Verdict != verdictCandidate {
			continue
		}
		if provider == "" || (v.Provider == provider && v.Pool == pool) {
			v.Verdict = verdictSelected
			return
		}
	}
}

// selected returns the selected pool, or nil.
func (x *explanation) selected() *poolVerdict {
	for i := range x.Pools {
		if x.Pools[i].Verdict == verdictSelected {
			return &x.Pools[i]
		}
	}
	return nil
}

func missingLabels(offered, wanted []string) []string {
	var out []string
	for _, l := range wanted {
		if !slices.Contains(offered, l) && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func hasLimit(limits map[string]int64, name string) bool {
	_, ok := limits[name]
	return ok
}

// tenantFacts compares the request's tenant's usage (the resources of its nodes,
// in any provider and state, as the launcher counts them) with its limits.
func (s *session) tenantFacts(ctx context.Context, x *explanation) error {
	r := x.req
	if r.TenantName == nil {
		return nil
	}
	limits, ok := s.cfg.TenantLimits(*r.TenantName)
	if !ok || len(limits) == 0 {
		return nil
	}
	used := map[string]int64{}
	entries, err := s.readNodes(ctx)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.node == nil || e.node.TenantName == nil || *e.node.TenantName != *r.TenantName {
			continue
		}
		for k, v := range e.node.ResourceCounts() {
			used[k] += v
		}
	}
	need := map[string]int64{config.ResourceInstances: int64(len(r.NodeTypes))}
	t := &tenantFacts{Name: *r.TenantName, Resources: resourceRows(limits, used, need)}
	for _, row := range t.Resources {
		if row.Limit == nil {
			continue
		}
		n := int64(0)
		if row.Need != nil {
			n = *row.Need
		}
		if row.Used+n > *row.Limit {
			t.Over = append(t.Over, row.Name)
		}
	}
	x.Tenant = t
	return nil
}

// resourceRows lists every resource with a limit or a usage: instances, cores
// and ram first, then the others by name.
func resourceRows(limits, used, need map[string]int64) []resourceFacts {
	keys := map[string]bool{}
	for k := range limits {
		keys[k] = true
	}
	for k := range used {
		keys[k] = true
	}
	rank := func(k string) int {
		switch k {
		case config.ResourceInstances:
			return 0
		case config.ResourceCores:
			return 1
		case config.ResourceRAM:
			return 2
		}
		return 3
	}
	var names []string
	for k := range keys {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if rank(names[i]) != rank(names[j]) {
			return rank(names[i]) < rank(names[j])
		}
		return names[i] < names[j]
	})
	out := []resourceFacts{}
	for _, k := range names {
		row := resourceFacts{Name: k, Used: used[k]}
		if l, ok := limits[k]; ok {
			row.Limit = &l
		}
		if n, ok := need[k]; ok {
			row.Need = &n
		}
		out = append(out, row)
	}
	return out
}

// temporalFacts adds what Temporal knows: the request workflow's execution and
// status, and the ledger of the pool it goes to. Without Temporal the explanation
// keeps ZooKeeper's facts and says so.
func (s *session) temporalFacts(ctx context.Context, x *explanation, webURL string) {
	t := s.cfg.Temporal
	wid := names.RequestWorkflowID(t.TaskQueue, x.RequestID)
	x.Workflow = &workflowFacts{ID: wid, WebURL: inspect.WebURL(webURL, t.Namespace, wid)}

	dctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	c, err := inspect.Dial(dctx, t)
	if err != nil {
		x.note(fmt.Sprintf("Temporal is not reachable (%v); these are ZooKeeper's facts only", err))
		return
	}
	defer c.Close()

	qctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	ex, err := c.Describe(qctx, wid)
	switch {
	case errors.Is(err, inspect.ErrNotFound):
		x.note("Temporal has no workflow " + wid + ": no poller of this launcher has picked the request up")
	case err != nil:
		x.note(fmt.Sprintf("describing workflow %s: %v", wid, err))
	default:
		x.Workflow.Execution = ex
		st, err := c.RequestStatus(qctx, wid)
		if err != nil {
			x.note(fmt.Sprintf("the workflow's status query was not answered (is a worker running?): %v", err))
		} else {
			x.Workflow.Status = st
		}
	}

	provider, pool := "", ""
	if st := x.Workflow.Status; st != nil && st.Provider != "" {
		provider, pool = st.Provider, st.Pool
	} else if x.req != nil {
		// The pool the launcher would choose, until the workflow says.
		for _, v := range x.Pools {
			if v.Ours && v.Verdict == verdictCandidate {
				provider, pool = v.Provider, v.Pool
				break
			}
		}
	}
	if provider == "" {
		return
	}
	lid := names.LedgerWorkflowID(t.TaskQueue, provider, pool)
	lctx, cancel := context.WithTimeout(ctx, explainTimeout)
	defer cancel()
	led, err := c.LedgerStatus(lctx, lid)
	switch {
	case errors.Is(err, inspect.ErrNotFound):
		x.note("pool " + provider + "/" + pool + " has no capacity ledger yet: no request has asked it for capacity")
		return
	case err != nil:
		x.note(fmt.Sprintf("the ledger %s did not answer: %v", lid, err))
		return
	}
	x.ledger = led
	need := map[string]int64{}
	if x.req != nil {
		need[config.ResourceInstances] = int64(len(x.req.NodeTypes))
	}
	x.Capacity = &capacityFacts{
		Provider: provider, Pool: pool, WorkflowID: lid,
		Resources: resourceRows(led.Limits, led.Used, need),
		Waiting:   led.WaitingCount, Position: led.Position(x.RequestID),
		Granted: led.Granted, Nodes: led.Nodes, Paused: led.Paused,
	}
}

// summarize says where the request stands and why, from the most specific fact
// known.
func (x *explanation) summarize() string {
	var st *inspect.RequestStatus
	var ex *inspect.Execution
	if x.Workflow != nil {
		st, ex = x.Workflow.Status, x.Workflow.Execution
	}
	if x.req == nil {
		if ex != nil {
			s := "the request is gone from ZooKeeper; its workflow is " + strings.ToLower(ex.Status)
			if st != nil {
				s += " (" + st.Phase + withReason(st.Reason) + ")"
			}
			return s
		}
		return "the request does not exist"
	}
	r := x.req
	switch r.State {
	case zookeeper.StateFulfilled:
		return "fulfilled with node(s) " + joinIDs(r.Nodes) + "; the requestor has not taken them yet"
	case zookeeper.StateFailed:
		s := "failed: declined by every registered pool (" + joinIDs(r.DeclinedBy) + ")"
		if reasons := x.ourReasons(); reasons != "" {
			s += "; this launcher's pools: " + reasons
		} else if st != nil && st.Reason != "" {
			s += "; this launcher: " + st.Reason
		}
		return s
	case zookeeper.StatePending:
		s := "accepted"
		if x.Request != nil && x.Request.LockHolder != "" {
			wid, _ := names.ParseLockOwner(x.Request.LockHolder)
			s += " by " + wid
		}
		if st != nil {
			s += "; " + phaseSummary(st)
		} else {
			s += "; nodes: " + x.nodeStates()
		}
		return s
	}
	if st != nil {
		switch st.Phase {
		case "deferred":
			return "waiting: " + st.Reason
		case "waiting-for-capacity":
			return "waiting for capacity in " + x.capacitySummary(st.Provider, st.Pool)
		case "planning", "accepting", "launching", "fulfilling", "cleaning-up":
			return phaseSummary(st)
		default:
			s := "the workflow ended " + st.Phase + withReason(st.Reason)
			if others := x.openOthers(); others != "" {
				s += "; waiting for other launchers (" + others + ")"
			}
			return s
		}
	}
	if sel := x.firstCandidate(); sel != nil {
		if x.ledger != nil && x.Capacity != nil && x.Capacity.Position > 0 {
			return "waiting for capacity in " + x.capacitySummary(sel.Provider, sel.Pool)
		}
		return "waiting for this launcher to plan it for pool " + sel.Provider + "/" + sel.Pool
	}
	s := "none of this launcher's pools can serve it"
	if reasons := x.ourReasons(); reasons != "" {
		s += " (" + reasons + ")"
	}
	if others := x.openOthers(); others != "" {
		return s + "; waiting for other launchers (" + others + ")"
	}
	return s + "; it fails once every registered pool has declined it"
}

// firstCandidate returns the pool of ours the request would go to, or nil.
func (x *explanation) firstCandidate() *poolVerdict {
	for i := range x.Pools {
		v := &x.Pools[i]
		if v.Ours && (v.Verdict == verdictSelected || v.Verdict == verdictCandidate) {
			return v
		}
	}
	return nil
}

// ourReasons joins why this launcher's pools do not serve the request.
func (x *explanation) ourReasons() string {
	var parts []string
	for _, v := range x.Pools {
		switch {
		case !v.Ours:
		case v.Verdict == verdictDeclined:
			if v.why != "" {
				parts = append(parts, v.Provider+"/"+v.Pool+": "+v.why)
			}
		case v.Verdict != verdictCandidate && v.Verdict != verdictSelected && v.Reason != "":
			parts = append(parts, v.Provider+"/"+v.Pool+": "+v.Reason)
		}
	}
	return strings.Join(parts, "; ")
}

// openOthers lists the other launchers' pools that may still serve the request.
func (x *explanation) openOthers() string {
	var ids []string
	for _, v := range x.Pools {
		if !v.Ours && v.Verdict == verdictMayServe {
			ids = append(ids, v.ID)
		}
	}
	return joinIDs(ids)
}

// capacitySummary describes the pool's capacity from its ledger.
func (x *explanation) capacitySummary(provider, pool string) string {
	s := "pool " + provider + "/" + pool
	c := x.Capacity
	if c == nil || c.Provider != provider || c.Pool != pool {
		return s
	}
	var full []string
	for _, r := range c.Resources {
		if r.Limit != nil {
			full = append(full, fmt.Sprintf("%s %d/%d used", r.Name, r.Used, *r.Limit))
		}
	}
	if len(full) > 0 {
		s += ": " + strings.Join(full, ", ")
	}
	switch {
	case c.Position > 0:
		s += fmt.Sprintf("; position %d of %d waiting", c.Position, c.Waiting)
	case c.Waiting > 0:
		s += fmt.Sprintf("; %d waiting", c.Waiting)
	}
	return s
}

// nodeStates renders the request's nodes and their states.
func (x *explanation) nodeStates() string {
	if x.Request == nil || len(x.Request.Nodes) == 0 {
		return "none yet"
	}
	var parts []string
	for _, n := range x.Request.Nodes {
		parts = append(parts, n.ID+" "+n.State)
	}
	return strings.Join(parts, ", ")
}

// phaseSummary describes a running workflow's phase and its nodes' attempts.
func phaseSummary(st *inspect.RequestStatus) string {
	s := st.Phase
	if st.Provider != "" {
		s += " in pool " + st.Provider + "/" + st.Pool
	}
	var parts []string
	for _, n := range st.Nodes {
		p := n.Label
		if n.NodeID != "" {
			p = n.NodeID + " (" + n.Label + ")"
		}
		p += " " + n.State
		if n.Attempt > 0 {
			p += ", attempt " + strconv.Itoa(n.Attempt)
		}
		if n.Step != "" {
			p += ", step " + n.Step
		}
		if n.Error != "" {
			p += ", last error: " + n.Error
		}
		parts = append(parts, p)
	}
	if len(parts) > 0 {
		s += "; nodes: " + strings.Join(parts, "; ")
	}
	return s + withReason(st.Reason)
}

func withReason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// write prints the explanation as text.
func (x *explanation) write(w io.Writer) {
	fmt.Fprintf(w, "Request %s: %s\n", x.RequestID, x.Summary)
	if f := x.Request; f != nil {
		fmt.Fprintln(w)
		kv := newKV(w)
		kv.add("State", f.State+ageNote(f.Age))
		kv.add("Node types", strings.Join(f.NodeTypes, ", "))
		kv.add("Provider", strCell(f.Provider))
		kv.add("Tenant", strCell(f.Tenant))
		kv.add("Requestor", strCell(f.Requestor))
		kv.add("Event ID", strCell(f.EventID))
		kv.add("Relative priority", strconv.Itoa(f.RelativePriority))
		kv.add("Declined by", strings.Join(f.DeclinedBy, ", "))
		var nodes []string
		for _, n := range f.Nodes {
			nodes = append(nodes, fmt.Sprintf("%s (%s, %s)", n.ID, n.Label, n.State))
		}
		kv.add("Nodes", strings.Join(nodes, ", "))
		lock := "unlocked"
		if f.Locked {
			lock = "locked"
			if f.LockHolder != "" {
				lock += " by " + f.LockHolder
			}
		}
		kv.add("Lock", lock)
		kv.write()
	}
	if len(x.Pools) > 0 {
		fmt.Fprintln(w, "\nPools:")
		t := newTable("Pool ID", "Provider", "Pool", "Priority", "Launcher", "Paused", "Verdict", "Reason")
		for _, v := range x.Pools {
			who := "other"
			if v.Ours {
				who = "this"
			}
			if !v.Registered {
				who += " (not registered)"
			}
			t.add(v.ID, v.Provider, v.Pool, strconv.Itoa(v.Priority), who, yesNo(v.Paused), v.Verdict, v.Reason)
		}
		t.write(w)
	}
	if c := x.Capacity; c != nil {
		fmt.Fprintf(w, "\nCapacity of pool %s/%s (ledger %s):\n", c.Provider, c.Pool, c.WorkflowID)
		writeResources(w, c.Resources)
		pos := "not waiting"
		if c.Position > 0 {
			pos = fmt.Sprintf("position %d", c.Position)
		} else if x.ledger != nil && len(x.ledger.Waiting) < c.Waiting {
			pos = "not among the first " + strconv.Itoa(len(x.ledger.Waiting))
		}
		fmt.Fprintf(w, "Waiting requests: %d (this request: %s); granted: %d; nodes: %d; paused: %s\n",
			c.Waiting, pos, c.Granted, c.Nodes, yesNo(c.Paused))
	}
	if t := x.Tenant; t != nil {
		fmt.Fprintf(w, "\nTenant %s (tenant-resource-limits):\n", t.Name)
		writeResources(w, t.Resources)
		if len(t.Over) > 0 {
			fmt.Fprintf(w, "The request would exceed: %s\n", strings.Join(t.Over, ", "))
		}
	}
	if wf := x.Workflow; wf != nil {
		fmt.Fprintf(w, "\nWorkflow %s\n", wf.ID)
		kv := newKV(w)
		if ex := wf.Execution; ex != nil {
			kv.add("Status", fmt.Sprintf("%s (%s, run %s, started %s ago, %d events)", ex.Status, ex.Type, ex.RunID,
				formatAge(time.Since(ex.StartTime)), ex.HistoryLength))
		}
		if st := wf.Status; st != nil {
			kv.add("Phase", st.Phase)
			kv.add("Reason", st.Reason)
			if st.Provider != "" {
				kv.add("Pool", st.Provider+"/"+st.Pool)
			}
			if st.HoldFailed {
				kv.add("Hold failed", "yes "+strings.Join(st.HeldNodes, ", "))
			}
		}
		kv.add("Temporal Web", wf.WebURL)
		kv.write()
		if st := wf.Status; st != nil && len(st.Nodes) > 0 {
			t := newTable("Index", "Label", "Node ID", "Attempt", "Step", "State", "External ID", "Error")
			for _, n := range st.Nodes {
				attempt := ""
				if n.Attempt > 0 {
					attempt = strconv.Itoa(n.Attempt)
				}
				t.add(strconv.Itoa(n.Index), n.Label, n.NodeID, attempt, n.Step, n.State, n.ExternalID, n.Error)
			}
			t.write(w)
		}
		if ex := wf.Execution; ex != nil && len(ex.PendingActivities) > 0 {
			fmt.Fprintln(w, "Pending activities:")
			t := newTable("Activity", "State", "Attempt", "Last failure")
			for _, a := range ex.PendingActivities {
				attempt := strconv.Itoa(int(a.Attempt))
				if a.MaximumAttempts > 0 {
					attempt += "/" + strconv.Itoa(int(a.MaximumAttempts))
				}
				t.add(a.Type, a.State, attempt, a.LastFailure)
			}
			t.write(w)
		}
	}
	if len(x.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range x.Notes {
			fmt.Fprintln(w, "  - "+n)
		}
	}
}

// writeResources prints resources as a table.
func writeResources(w io.Writer, rows []resourceFacts) {
	t := newTable("Resource", "Used", "Limit", "Free", "Request needs")
	for _, r := range rows {
		limit, free, need := "unlimited", "", ""
		if r.Limit != nil {
			limit = strconv.FormatInt(*r.Limit, 10)
			free = strconv.FormatInt(max(*r.Limit-r.Used, 0), 10)
		}
		if r.Need != nil {
			need = strconv.FormatInt(*r.Need, 10)
		}
		t.add(r.Name, strconv.FormatInt(r.Used, 10), limit, free, need)
	}
	t.write(w)
}

func ageNote(age string) string {
	if age == "" {
		return ""
	}
	return " for " + age
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// kv prints aligned "Key: value" lines, skipping empty values.
type kv struct {
	w     io.Writer
	lines [][2]string
}

func newKV(w io.Writer) *kv { return &kv{w: w} }

func (k *kv) add(key, value string) {
	if value != "" {
		k.lines = append(k.lines, [2]string{key, value})
	}
}

func (k *kv) write() {
	width := 0
	for _, l := range k.lines {
		width = max(width, len(l[0]))
	}
	for _, l := range k.lines {
		fmt.Fprintf(k.w, "  %-*s  %s\n", width+1, l[0]+":", l[1])
	}
}
