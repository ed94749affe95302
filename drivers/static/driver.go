package static

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/nodescan"
)

// Step is a state of the static driver's create and delete state machines.
type Step string

// Steps of the create state machine: "" (start) claims a free slot when a host of the
// label answers; StepWaitingForHost waits for a host's check to end; StepComplete
// holds the claimed slot. The delete state machine goes from "" to StepComplete in
// one step.
const (
	StepWaitingForHost Step = "waiting for host check"
	StepComplete       Step = "complete"
)

// ResourceTypeSlot is the type of the resources ListResources returns: claimed slots.
const ResourceTypeSlot = "slot"

// Defaults of the driver's options.
const (
	// DefaultCheckInterval is how often every host is scanned.
	DefaultCheckInterval = time.Minute
	// DefaultHandoutCheckAge is how old a host's last successful check may be when one
	// of its slots is handed out; an older one is checked again first (a port check, as
	// Nodepool checks a static node's liveness before it hands the node out).
	DefaultHandoutCheckAge = 10 * time.Second
	// DefaultRetryAfter is the retry hint of the capacity error a create answers when
	// no slot of the label is free on a host that answers.
	DefaultRetryAfter = 30 * time.Second
	// RestoreRetryAfter is the retry hint of the capacity error a create answers
	// before the claims of existing nodes have been restored (see RestoreClaims).
	RestoreRetryAfter = 5 * time.Second
)

// waitForCheck is the create state's wait hint while a host's check runs.
const waitForCheck = 200 * time.Millisecond

// maxChecks bounds the host checks running at once.
const maxChecks = 32

// Driver hands out the slots of a provider's static nodes. It is safe for concurrent
// use.
type Driver struct {
	provider        string
	logger          *slog.Logger
	checkInterval   time.Duration
	handoutCheckAge time.Duration
	retryAfter      time.Duration
	scan            func(context.Context, nodescan.Target) (nodescan.Result, error)
	resolve         func(context.Context, string) ([]netip.Addr, error)

	hosts  []*host
	byName map[string]*host
	pools  map[string]map[string]bool // pool -> labels

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	checks chan struct{}

	mu       sync.Mutex
	claims   map[slotKey]*claim
	restored bool
	// failNext, when set, is the error of the next create that would claim a slot.
	failNext error
}

var _ drivers.Driver = (*Driver)(nil)

// host is a configured static node and what the checks learnt about it.
type host struct {
	cfg      NodeConfig
	pool     string
	labels   []string
	slots    int
	checked  bool     // host-key-checking
	hostKeys []string // configured, normalized

	// Guarded by Driver.mu.
	status   hostStatus
	reason   string
	lastOK   time.Time
	scanned  []string
	addrs    []netip.Addr
	checking bool
}

type hostStatus int

const (
	statusUnknown hostStatus = iota
	statusUp
	statusDown
)

func (s hostStatus) String() string {
	switch s {
	case statusUp:
		return "up"
	case statusDown:
		return "down"
	}
	return "unknown"
}

type slotKey struct {
	host string
	slot int
}

// claim is a slot in use by a node.
type claim struct {
	host     *host
	slot     int
	nodeID   string
	attempt  int // 0: restored, the attempt is not known
	label    string
	metadata map[string]string
}

// Option configures a Driver.
type Option func(*Driver)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(d *Driver) { d.logger = l } }

// WithCheckInterval sets how often every host is checked.
func WithCheckInterval(iv time.Duration) Option {
	return func(d *Driver) {
		if iv > 0 {
			d.checkInterval = iv
		}
	}
}

// WithHandoutCheckAge sets how old a host's last successful check may be when one of
// its slots is handed out.
func WithHandoutCheckAge(age time.Duration) Option {
	return func(d *Driver) {
		if age > 0 {
			d.handoutCheckAge = age
		}
	}
}

// WithRetryAfter sets the retry hint of the capacity error of a create that finds no
// free slot.
func WithRetryAfter(after time.Duration) Option {
	return func(d *Driver) {
		if after > 0 {
			d.retryAfter = after
		}
	}
}

// WithoutPriorClaims declares that no node holds a slot yet (a new deployment, a
// test): creates claim slots at once instead of waiting for RestoreClaims.
func WithoutPriorClaims() Option { return func(d *Driver) { d.restored = true } }

// ParseProvider decodes a provider section with decode and builds the driver. decode is
// typically the config package's strict decoder of the section without Nodepool's
// common keys (Provider.DecodeDriver).
func ParseProvider(provider string, decode func(any) error, opts ...Option) (*Driver, error) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, fmt.Errorf("decoding static provider %s: %w", provider, err)
	}
	return New(provider, cfg, opts...)
}

// New validates the configuration, builds the driver and starts checking the hosts.
// Close stops the checks.
func New(provider string, cfg Config, opts ...Option) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating static provider %s: %w", provider, err)
	}
	d := &Driver{
		provider:        provider,
		logger:          slog.New(slog.DiscardHandler),
		checkInterval:   DefaultCheckInterval,
		handoutCheckAge: DefaultHandoutCheckAge,
		retryAfter:      DefaultRetryAfter,
		scan:            nodescan.Scan,
		resolve:         lookupHost,
		byName:          map[string]*host{},
		pools:           map[string]map[string]bool{},
		checks:          make(chan struct{}, maxChecks),
		claims:          map[slotKey]*claim{},
	}
	for _, o := range opts {
		o(d)
	}
	d.logger = d.logger.With("provider", provider)
	for _, p := range cfg.Pools {
		labels := map[string]bool{}
		for _, n := range p.Nodes {
			h := &host{
				cfg:     n,
				pool:    p.Name,
				labels:  slices.Clone(n.Labels),
				slots:   n.EffectiveMaxParallelJobs(),
				checked: n.EffectiveHostKeyChecking(),
			}
			for _, k := range n.HostKey {
				h.hostKeys = append(h.hostKeys, normalizeKey(k))
			}
			if addr, err := netip.ParseAddr(n.Name); err == nil {
				h.addrs = []netip.Addr{addr}
			}
			d.hosts = append(d.hosts, h)
			d.byName[n.Name] = h
			for _, l := range n.Labels {
				labels[l] = true
			}
		}
		d.pools[p.Name] = labels
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.monitor()
	return d, nil
}

// Close stops the host checks.
func (d *Driver) Close() error {
	d.cancel()
	d.wg.Wait()
	return nil
}

// HandlesNodescan reports that the driver checks its hosts and finds their host keys
// itself (see the package documentation): the launcher must not scan its nodes again.
func (d *Driver) HandlesNodescan() bool { return true }

// AdvanceCreate claims a free slot of a node of the label, on a host that answers.
func (d *Driver) AdvanceCreate(_ context.Context, st drivers.CreateState) (drivers.CreateState, error) {
	if st.Complete {
		return st, nil
	}
	req := st.Request
	labels, ok := d.pools[req.Pool]
	if !ok {
		return st, drivers.Permanent("pool %q is not configured in static provider %s", req.Pool, d.provider)
	}
	if !labels[req.Label] {
		return st, drivers.Permanent("no node of pool %q of static provider %s offers label %q", req.Pool, d.provider, req.Label)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.claimOfLocked(req.NodeID, req.Attempt); c != nil {
		return d.completeLocked(st, c), nil
	}
	if !d.restored {
		return st, drivers.CapacityRetryAfter(RestoreRetryAfter,
			"static provider %s: the slots held by existing nodes are not known yet", d.provider)
	}
	if err := d.failNext; err != nil {
		d.failNext = nil
		return st, err
	}

	now := time.Now()
	var (
		free    []*host
		pending bool
		down    []string
	)
	for _, h := range d.hosts {
		if h.pool != req.Pool || !slices.Contains(h.labels, req.Label) || d.freeSlotLocked(h) < 0 {
			continue
		}
		free = append(free, h)
	}
	// Spread the jobs: the host with the fewest slots in use first, then file order.
	slices.SortStableFunc(free, func(a, b *host) int { return cmp.Compare(d.usedLocked(a), d.usedLocked(b)) })
	for _, h := range free {
		switch {
		case h.status == statusUp && (!h.checked || now.Sub(h.lastOK) <= d.handoutCheckAge):
			c := &claim{
				host:     h,
				slot:     d.freeSlotLocked(h),
				nodeID:   req.NodeID,
				attempt:  req.Attempt,
				label:    req.Label,
				metadata: maps.Clone(req.Metadata),
			}
			if c.metadata == nil {
				c.metadata = map[string]string{}
			}
			d.claims[slotKey{h.cfg.Name, c.slot}] = c
			d.logger.Info("claimed static node slot", "node_id", req.NodeID, "attempt", req.Attempt,
				"label", req.Label, "external_id", h.externalID(c.slot))
			return d.completeLocked(st, c), nil
		case h.status == statusUp:
			// Up, but not checked lately: check the port before handing it out.
			d.startCheckLocked(h, false)
			pending = true
		case h.status == statusUnknown:
			d.startCheckLocked(h, true)
			pending = true
		default:
			down = append(down, fmt.Sprintf("%s (%s)", h.cfg.Name, h.reason))
		}
	}
	if pending {
		st.Step = string(StepWaitingForHost)
		st.Wait = waitForCheck
		return st, nil
	}
	if len(free) == 0 {
		return st, drivers.CapacityRetryAfter(d.retryAfter,
			"static provider %s: every slot of label %q in pool %q is in use", d.provider, req.Label, req.Pool)
	}
	return st, drivers.CapacityRetryAfter(d.retryAfter,
		"static provider %s: no host with a free slot of label %q in pool %q answers: %s",
		d.provider, req.Label, req.Pool, strings.Join(down, ", "))
}

// completeLocked returns the create state completed with the claimed slot.
func (d *Driver) completeLocked(st drivers.CreateState, c *claim) drivers.CreateState {
	inst := d.instanceLocked(c)
	st.ExternalID = inst.ExternalID
	st.Instance = &inst
	st.Complete = true
	st.Step = string(StepComplete)
	st.Wait = 0
	return st
}

// AdvanceDelete frees the slot, unless another node has claimed it since.
func (d *Driver) AdvanceDelete(_ context.Context, st drivers.DeleteState) (drivers.DeleteState, error) {
	if st.Complete {
		return st, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if key, ok := d.parseLocked(st.ExternalID); ok {
		if c := d.claims[key]; c != nil {
			if st.NodeID == "" || c.nodeID == st.NodeID {
				delete(d.claims, key)
				d.logger.Info("freed static node slot", "node_id", c.nodeID, "external_id", st.ExternalID)
			} else {
				d.logger.Info("static node slot is held by another node; left alone",
					"external_id", st.ExternalID, "node_id", st.NodeID, "holder", c.nodeID)
			}
		}
	}
	st.Step = string(StepComplete)
	st.Complete = true
	st.Wait = 0
	return st, nil
}

// ListInstances returns the claimed slots.
func (d *Driver) ListInstances(context.Context) ([]drivers.Instance, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]drivers.Instance, 0, len(d.claims))
	for _, c := range d.sortedClaimsLocked() {
		out = append(out, d.instanceLocked(c))
	}
	return out, nil
}

// ListResources returns the claimed slots as resources of type "slot".
func (d *Driver) ListResources(context.Context) ([]drivers.Resource, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]drivers.Resource, 0, len(d.claims))
	for _, c := range d.sortedClaimsLocked() {
		out = append(out, drivers.Resource{
			Type:     ResourceTypeSlot,
			ID:       c.host.externalID(c.slot),
			Metadata: maps.Clone(c.metadata),
		})
	}
	return out, nil
}

// DeleteResource frees a leaked slot, unless another node has claimed it since it was
// listed.
func (d *Driver) DeleteResource(_ context.Context, r drivers.Resource) error {
	if r.Type != ResourceTypeSlot {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key, ok := d.parseLocked(r.ID)
	if !ok {
		return nil
	}
	if c := d.claims[key]; c != nil && c.metadata[drivers.MetaNodeID] == r.Metadata[drivers.MetaNodeID] {
		delete(d.claims, key)
		d.logger.Warn("freed leaked static node slot", "external_id", r.ID, "node_id", c.nodeID)
	}
	return nil
}

// QuotaLimits reports the slots of the hosts that answer as "instances".
func (d *Driver) QuotaLimits(context.Context) (drivers.Resources, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for _, h := range d.hosts {
		if h.status == statusUp {
			n += int64(h.slots)
		}
	}
	return drivers.Resources{drivers.ResourceInstances: n}, nil
}

// LabelQuota is one instance for every label a node of the pool offers.
func (d *Driver) LabelQuota(_ context.Context, pool, label string) (drivers.Resources, error) {
	labels, ok := d.pools[pool]
	if !ok {
		return nil, drivers.Permanent("pool %q is not configured in static provider %s", pool, d.provider)
	}
	if !labels[label] {
		return nil, drivers.Permanent("no node of pool %q of static provider %s offers label %q", pool, d.provider, label)
	}
	return drivers.Resources{drivers.ResourceInstances: 1}, nil
}

// Claim is a slot held by a node, as the node's record tells it.
type Claim struct {
	// ExternalID is the node's external_id.
	ExternalID string
	// NodeID is the node's id.
	NodeID string
	// Label is the node's label (its first type), if known.
	Label string
	// Metadata is added to the claim's metadata, which always holds the provider,
	// pool and node id.
	Metadata map[string]string
}

// RestoreClaims records the slots held by existing nodes, as read from their records,
// and lets creates claim slots from then on (see the package documentation). A claim
// of a slot that already has one is ignored; so is a claim of a slot the configuration
// no longer has, and the error lists both kinds. Calling it again adds claims.
func (d *Driver) RestoreClaims(claims []Claim) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.restored = true
	var problems []error
	for _, rc := range claims {
		key, ok := d.parseLocked(rc.ExternalID)
		if !ok {
			problems = append(problems, fmt.Errorf("node %s: no slot %q in static provider %s", rc.NodeID, rc.ExternalID, d.provider))
			continue
		}
		if c := d.claims[key]; c != nil {
			if c.nodeID != rc.NodeID {
				problems = append(problems, fmt.Errorf("node %s: slot %q is held by node %s", rc.NodeID, rc.ExternalID, c.nodeID))
			}
			continue
		}
		h := d.byName[key.host]
		md := maps.Clone(rc.Metadata)
		if md == nil {
			md = map[string]string{}
		}
		md[drivers.MetaProviderName] = d.provider
		md[drivers.MetaPoolName] = h.pool
		md[drivers.MetaNodeID] = rc.NodeID
		d.claims[key] = &claim{host: h, slot: key.slot, nodeID: rc.NodeID, label: rc.Label, metadata: md}
	}
	if len(problems) > 0 {
		return fmt.Errorf("restoring claims of static provider %s: %w", d.provider, errors.Join(problems...))
	}
	return nil
}

// ParseExternalID returns the host name and slot number of an external id of this
// driver ("<name>" or "<name>#<slot>"), for the node record's hostname and slot.
func (d *Driver) ParseExternalID(externalID string) (hostname string, slot int, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key, ok := d.parseLocked(externalID)
	return key.host, key.slot, ok
}

// HostStatus is what the driver knows of a host.
type HostStatus struct {
	Name   string
	Pool   string
	Labels []string
	// Slots is max-parallel-jobs, Claimed how many of them are held.
	Slots, Claimed int
	// Status is "unknown" (not checked yet), "up" or "down"; Reason says why down.
	Status string
	Reason string
	// LastOK is when the host last answered a check.
	LastOK time.Time
	// HostKeys are the keys a node of the host gets.
	HostKeys []string
}

// Hosts returns the state of every host, in configuration order.
func (d *Driver) Hosts() []HostStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]HostStatus, 0, len(d.hosts))
	for _, h := range d.hosts {
		out = append(out, HostStatus{
			Name: h.cfg.Name, Pool: h.pool, Labels: slices.Clone(h.labels),
			Slots: h.slots, Claimed: d.usedLocked(h),
			Status: h.status.String(), Reason: h.reason, LastOK: h.lastOK,
			HostKeys: h.keysLocked(),
		})
	}
	return out
}

// externalID is the external id of a slot: the host name, with "#<slot>" when the
// host has several slots.
func (h *host) externalID(slot int) string {
	if h.slots == 1 {
		return h.cfg.Name
	}
	return h.cfg.Name + "#" + strconv.Itoa(slot)
}

// parseLocked maps an external id to a configured slot. "<name>" is slot 0.
func (d *Driver) parseLocked(externalID string) (slotKey, bool) {
	name, slot := externalID, 0
	if i := strings.LastIndexByte(externalID, '#'); i >= 0 {
		n, err := strconv.Atoi(externalID[i+1:])
		if err != nil || n < 0 {
			return slotKey{}, false
		}
		name, slot = externalID[:i], n
	}
	h := d.byName[name]
	if h == nil || slot >= h.slots {
		return slotKey{}, false
	}
	return slotKey{name, slot}, true
}

// claimOfLocked returns the claim of a node's launch attempt (or a restored claim of
// the node, whose attempt is not known).
func (d *Driver) claimOfLocked(nodeID string, attempt int) *claim {
	for _, c := range d.claims {
		if c.nodeID == nodeID && (c.attempt == attempt || c.attempt == 0) {
			return c
		}
	}
	return nil
}

// freeSlotLocked returns the lowest free slot of the host, or -1.
func (d *Driver) freeSlotLocked(h *host) int {
	for s := range h.slots {
		if d.claims[slotKey{h.cfg.Name, s}] == nil {
			return s
		}
	}
	return -1
}

// usedLocked counts the host's claimed slots.
func (d *Driver) usedLocked(h *host) int {
	n := 0
	for s := range h.slots {
		if d.claims[slotKey{h.cfg.Name, s}] != nil {
			n++
		}
	}
	return n
}

func (d *Driver) sortedClaimsLocked() []*claim {
	out := slices.Collect(maps.Values(d.claims))
	slices.SortFunc(out, func(a, b *claim) int {
		return cmp.Or(cmp.Compare(a.host.cfg.Name, b.host.cfg.Name), cmp.Compare(a.slot, b.slot))
	})
	return out
}

// keysLocked returns the host keys a node of the host gets: the configured ones
// without host-key-checking, else the scanned ones (none for connection types
// without SSH host keys).
func (h *host) keysLocked() []string {
	if !h.checked {
		return slices.Clone(h.hostKeys)
	}
	return slices.Clone(h.scanned)
}

// instanceLocked describes a claimed slot.
func (d *Driver) instanceLocked(c *claim) drivers.Instance {
	h := c.host
	n := &h.cfg
	inst := drivers.Instance{
		ExternalID:     h.externalID(c.slot),
		Ready:          true,
		InterfaceIP:    n.Name,
		Metadata:       maps.Clone(c.metadata),
		Quota:          drivers.Resources{drivers.ResourceInstances: 1},
		Username:       n.EffectiveUsername(),
		PythonPath:     n.EffectivePythonPath(),
		ShellType:      n.ShellType,
		ConnectionType: n.EffectiveConnectionType(),
		ConnectionPort: n.EffectiveConnectionPort(),
		HostKeys:       h.keysLocked(),
	}
	for _, a := range h.addrs {
		switch {
		case a.Is4() && inst.PublicIPv4 == "":
			inst.PublicIPv4 = a.String()
		case a.Is6() && !a.Is4In6() && inst.PublicIPv6 == "":
			inst.PublicIPv6 = a.String()
		}
	}
	if inst.HostKeys == nil {
		inst.HostKeys = []string{}
	}
	return inst
}

// normalizeKey reduces a host key to "<type> <base64>", dropping a comment and extra
// white space.
func normalizeKey(k string) string {
	f := strings.Fields(k)
	if len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return strings.TrimSpace(k)
}
