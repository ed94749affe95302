package sim

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// API is the simulated cloud's interface. [Cloud] implements it in process and
// [Client] over HTTP; the [Driver] uses nothing else.
type API interface {
	// CreateInstance starts an instance. A repeated call with the same non-empty
	// ClientToken returns the instance the first call started (with status
	// [StatusDeleted] once it is gone) instead of starting another.
	CreateInstance(ctx context.Context, in CreateInstanceInput) (InstanceInfo, error)
	// DescribeInstance returns an instance, or a [CodeNotFound] error once it is gone.
	DescribeInstance(ctx context.Context, id string) (InstanceInfo, error)
	// DeleteInstance starts deleting an instance and returns it: deleting, or with
	// status [StatusDeleted] when the deletion completed at once (no delete latency).
	// Repeating it does not restart the deletion. An instance that does not exist (any
	// more) is a [CodeNotFound] error.
	DeleteInstance(ctx context.Context, in DeleteInstanceInput) (InstanceInfo, error)
	// ListInstances returns every instance that exists, deleting ones included, in
	// creation order.
	ListInstances(ctx context.Context) ([]InstanceInfo, error)
	// Limits returns the cloud's quota, region and zones.
	Limits(ctx context.Context) (CloudLimits, error)
}

// Call kinds, as counted in the cloud's statistics and used to inject errors.
const (
	CallCreate   = "create"
	CallDescribe = "describe"
	CallDelete   = "delete"
	CallList     = "list"
	CallLimits   = "limits"
)

var callKinds = []string{CallCreate, CallDescribe, CallDelete, CallList, CallLimits}

// InstanceStatus is the life-cycle state of a simulated instance.
type InstanceStatus string

// Instance statuses.
const (
	// StatusBuilding: the instance is going through its boot steps.
	StatusBuilding InstanceStatus = "building"
	// StatusActive: the instance is up.
	StatusActive InstanceStatus = "active"
	// StatusDeleting: the instance is being deleted and still uses quota.
	StatusDeleting InstanceStatus = "deleting"
	// StatusDeleted: the instance is gone. Only replies to create and delete calls
	// carry it; a gone instance is not listed or described.
	StatusDeleted InstanceStatus = "deleted"
)

// CreateInstanceInput is the request of a create call.
type CreateInstanceInput struct {
	// ClientToken makes the call idempotent; empty means no idempotency.
	ClientToken string `json:"client_token,omitempty"`
	// Name is the instance's host name.
	Name string `json:"name"`
	// Flavor is the size of the instance; it determines the quota it uses.
	Flavor Flavor `json:"flavor"`
	// Image names the image to boot.
	Image string `json:"image"`
	// AZ is the zone, or empty for the cloud's choice.
	AZ string `json:"az,omitempty"`
	// Metadata is stored on the instance.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// DeleteInstanceInput is the request of a delete call.
type DeleteInstanceInput struct {
	ID string `json:"id"`
	// NodeID, when set, guards the deletion: an instance whose metadata names another
	// node is not deleted and is reported as not found. It protects a node's stale
	// external id from deleting an instance that reuses the id.
	NodeID string `json:"node_id,omitempty"`
}

// InstanceInfo is the cloud's view of an instance.
type InstanceInfo struct {
	ID          string         `json:"id"`
	Name        string         `json:"name,omitempty"`
	ClientToken string         `json:"client_token,omitempty"`
	Status      InstanceStatus `json:"status"`
	// BootStep is the index of the current boot step while building.
	BootStep int `json:"boot_step,omitempty"`
	// BootSteps is the number of boot steps of the instance.
	BootSteps int `json:"boot_steps,omitempty"`
	// Remaining is the time until the current boot step ends (building) or until the
	// instance is gone (deleting).
	Remaining   time.Duration     `json:"remaining,omitempty"`
	Flavor      Flavor            `json:"flavor"`
	Image       string            `json:"image,omitempty"`
	AZ          string            `json:"az,omitempty"`
	Region      string            `json:"region,omitempty"`
	HostID      string            `json:"host_id,omitempty"`
	PrivateIPv4 string            `json:"private_ipv4,omitempty"`
	PublicIPv4  string            `json:"public_ipv4,omitempty"`
	PublicIPv6  string            `json:"public_ipv6,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Created     time.Time         `json:"created,omitzero"`
}

// Quota returns what the instance uses of the cloud's quota.
func (i InstanceInfo) Quota() drivers.Resources {
	return drivers.Resources{
		drivers.ResourceInstances: 1,
		drivers.ResourceCores:     i.Flavor.Cores,
		drivers.ResourceRAM:       i.Flavor.RAM,
	}
}

// CloudLimits describes the cloud's quota and location.
type CloudLimits struct {
	// Quota holds the cloud-wide limits; an absent key is unlimited.
	Quota  drivers.Resources `json:"quota"`
	Region string            `json:"region"`
	AZs    []string          `json:"azs"`
}

// Cloud is the simulated cloud. It is safe for concurrent use.
type Cloud struct {
	now    func() time.Time
	logger *slog.Logger

	apiLatency    time.Duration
	bootSteps     []time.Duration
	deleteLatency time.Duration
	quota         drivers.Resources
	errorRate     map[string]float64
	rateLimitRate float64
	capacityRate  float64
	lostReplyRate float64
	azs           []string
	region        string

	mu          sync.Mutex
	rng         *rand.Rand
	seq         uint64
	instances   map[string]*instance
	deleting    map[string]*instance
	tokens      map[string]string
	used        drivers.Resources
	calls       map[string]int64
	errors      map[ErrorCode]int64
	created     int64
	deleted     int64
	lostReplies int64
	injected    map[string][]ErrorCode
	// createdByNode counts, per node id (metadata nodepool_node_id), every instance
	// ever created for it.
	createdByNode map[string]int64
	// liveByNode counts each node's instances not yet asked to be deleted, and
	// peakByNode the most there ever were at once: a node id with two at once is a
	// duplicate launch (a retried attempt's instance is deleted before the next).
	liveByNode, peakByNode map[string]int64
}

var _ API = (*Cloud)(nil)

// instance is the cloud's record of one instance.
type instance struct {
	seq      uint64
	info     InstanceInfo
	steps    []time.Duration
	deleteAt time.Time
}

// NewCloud builds a cloud from the cloud keys of cfg (the driver keys are ignored). It
// honours [WithClock] and [WithLogger].
func NewCloud(cfg Config, opts ...Option) (*Cloud, error) {
	if err := cfg.ValidateCloud(); err != nil {
		return nil, fmt.Errorf("validating sim cloud configuration: %w", err)
	}
	o := buildOptions(opts)
	quota := drivers.Resources{}
	if q := cfg.Quota; q != nil {
		if q.Instances != nil {
			quota[drivers.ResourceInstances] = *q.Instances
		}
		if q.Cores != nil {
			quota[drivers.ResourceCores] = *q.Cores
		}
		if q.RAM != nil {
			quota[drivers.ResourceRAM] = *q.RAM
		}
	}
	seed := uint64(cfg.Seed)
	return &Cloud{
		now:           o.now,
		logger:        o.logger,
		apiLatency:    seconds(cfg.APILatency),
		bootSteps:     cfg.bootSteps(),
		deleteLatency: seconds(cfg.DeleteLatency),
		quota:         quota,
		errorRate: map[string]float64{
			CallCreate:   cfg.ErrorRate.Create,
			CallDelete:   cfg.ErrorRate.Delete,
			CallList:     cfg.ErrorRate.List,
			CallDescribe: cfg.ErrorRate.Describe,
		},
		rateLimitRate: cfg.RateLimitRate,
		capacityRate:  cfg.CapacityErrorRate,
		lostReplyRate: cfg.LostReplyRate,
		azs:           cfg.azs(),
		region:        cfg.region(),
		rng:           rand.New(rand.NewPCG(seed, seed^0x5eed5eed5eed5eed)),
		instances:     make(map[string]*instance),
		deleting:      make(map[string]*instance),
		tokens:        make(map[string]string),
		used:          drivers.Resources{},
		calls:         make(map[string]int64),
		errors:        make(map[ErrorCode]int64),
		injected:      make(map[string][]ErrorCode),
		createdByNode: make(map[string]int64),
		liveByNode:    make(map[string]int64),
		peakByNode:    make(map[string]int64),
	}, nil
}

// CreateInstance implements [API].
func (c *Cloud) CreateInstance(ctx context.Context, in CreateInstanceInput) (InstanceInfo, error) {
	if err := c.latency(ctx); err != nil {
		return InstanceInfo{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.begin(CallCreate)
	f := c.draw(CallCreate)
	if err := c.fault(CallCreate, f); err != nil {
		return InstanceInfo{}, err
	}
	info, err := c.create(now, in, f)
	if err == nil && f.lostReply {
		return InstanceInfo{}, c.lose(CallCreate)
	}
	return info, err
}

// create is the body of CreateInstance; c.mu is held.
func (c *Cloud) create(now time.Time, in CreateInstanceInput, f faults) (InstanceInfo, error) {
	if in.ClientToken != "" {
		if id, ok := c.tokens[in.ClientToken]; ok {
			inst, live := c.instances[id]
			if !live {
				return InstanceInfo{ID: id, ClientToken: in.ClientToken, Status: StatusDeleted}, nil
			}
			if inst.info.Name != in.Name || inst.info.Flavor != in.Flavor || inst.info.Image != in.Image ||
				(in.AZ != "" && in.AZ != inst.info.AZ) {
				return InstanceInfo{}, c.fail(apiErrorf(CodeIdempotentParameterMismatch,
					"client token %q was used for instance %s with other parameters", in.ClientToken, id))
			}
			return inst.view(now), nil
		}
	}
	switch {
	case in.Name == "":
		return InstanceInfo{}, c.fail(apiErrorf(CodeInvalidParameter, "instance name is empty"))
	case in.Image == "":
		return InstanceInfo{}, c.fail(apiErrorf(CodeInvalidParameter, "image is empty"))
	case in.Flavor.Cores < 0 || in.Flavor.RAM < 0:
		return InstanceInfo{}, c.fail(apiErrorf(CodeInvalidParameter, "flavor %q has negative size", in.Flavor.Name))
	case in.AZ != "" && !slices.Contains(c.azs, in.AZ):
		return InstanceInfo{}, c.fail(apiErrorf(CodeInvalidParameter, "unknown availability zone %q", in.AZ))
	}
	if f.noCapacity {
		return InstanceInfo{}, c.fail(apiErrorf(CodeInsufficientCapacity,
			"no capacity for flavor %q right now", in.Flavor.Name))
	}
	need := InstanceInfo{Flavor: in.Flavor}.Quota()
	if ok, over := c.quota.Fits(c.used, need); !ok {
		return InstanceInfo{}, c.fail(apiErrorf(CodeQuotaExceeded,
			"instance would exceed the quota of %v", over))
	}

	c.seq++
	az := in.AZ
	if az == "" {
		az = c.azs[c.rng.IntN(len(c.azs))]
	}
	inst := &instance{
		seq:   c.seq,
		steps: slices.Clone(c.bootSteps),
		info: InstanceInfo{
			ID:          fmt.Sprintf("sim-%d", c.seq),
			Name:        in.Name,
			ClientToken: in.ClientToken,
			Flavor:      in.Flavor,
			Image:       in.Image,
			AZ:          az,
			Region:      c.region,
			HostID:      fmt.Sprintf("host-%08x", c.rng.Uint32()),
			Metadata:    maps.Clone(in.Metadata),
			Created:     now,
		},
	}
	inst.info.PrivateIPv4, inst.info.PublicIPv4, inst.info.PublicIPv6 = addresses(c.seq)
	c.instances[inst.info.ID] = inst
	if in.ClientToken != "" {
		c.tokens[in.ClientToken] = inst.info.ID
	}
	c.used = c.used.Add(need)
	c.created++
	if node := in.Metadata[drivers.MetaNodeID]; node != "" {
		c.createdByNode[node]++
		c.liveByNode[node]++
		c.peakByNode[node] = max(c.peakByNode[node], c.liveByNode[node])
	}
	c.logger.Debug("instance created", "external_id", inst.info.ID, "name", in.Name, "az", az)
	return inst.view(now), nil
}

// DescribeInstance implements [API].
func (c *Cloud) DescribeInstance(ctx context.Context, id string) (InstanceInfo, error) {
	if err := c.latency(ctx); err != nil {
		return InstanceInfo{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.begin(CallDescribe)
	if err := c.fault(CallDescribe, c.draw(CallDescribe)); err != nil {
		return InstanceInfo{}, err
	}
	inst, ok := c.instances[id]
	if !ok {
		return InstanceInfo{}, c.fail(apiErrorf(CodeNotFound, "instance %q does not exist", id))
	}
	return inst.view(now), nil
}

// DeleteInstance implements [API].
func (c *Cloud) DeleteInstance(ctx context.Context, in DeleteInstanceInput) (InstanceInfo, error) {
	if err := c.latency(ctx); err != nil {
		return InstanceInfo{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.begin(CallDelete)
	f := c.draw(CallDelete)
	if err := c.fault(CallDelete, f); err != nil {
		return InstanceInfo{}, err
	}
	info, err := c.delete(now, in)
	if err == nil && f.lostReply {
		return InstanceInfo{}, c.lose(CallDelete)
	}
	return info, err
}

// delete is the body of DeleteInstance; c.mu is held.
func (c *Cloud) delete(now time.Time, in DeleteInstanceInput) (InstanceInfo, error) {
	inst, ok := c.instances[in.ID]
	if !ok {
		return InstanceInfo{}, c.fail(apiErrorf(CodeNotFound, "instance %q does not exist", in.ID))
	}
	if owner := inst.info.Metadata[drivers.MetaNodeID]; in.NodeID != "" && owner != "" && owner != in.NodeID {
		return InstanceInfo{}, c.fail(apiErrorf(CodeNotFound,
			"instance %q belongs to node %s, not to node %s", in.ID, owner, in.NodeID))
	}
	if inst.deleteAt.IsZero() {
		inst.deleteAt = now.Add(c.deleteLatency)
		c.deleting[in.ID] = inst
		if node := inst.info.Metadata[drivers.MetaNodeID]; node != "" {
			c.liveByNode[node]--
		}
		c.logger.Debug("instance deleting", "external_id", in.ID)
		c.sweep(now)
	}
	if _, live := c.instances[in.ID]; !live {
		return InstanceInfo{ID: in.ID, ClientToken: inst.info.ClientToken, Status: StatusDeleted}, nil
	}
	return inst.view(now), nil
}

// ListInstances implements [API].
func (c *Cloud) ListInstances(ctx context.Context) ([]InstanceInfo, error) {
	if err := c.latency(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.begin(CallList)
	if err := c.fault(CallList, c.draw(CallList)); err != nil {
		return nil, err
	}
	return c.list(now), nil
}

// Limits implements [API].
func (c *Cloud) Limits(ctx context.Context) (CloudLimits, error) {
	if err := c.latency(ctx); err != nil {
		return CloudLimits{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.begin(CallLimits)
	if err := c.fault(CallLimits, c.draw(CallLimits)); err != nil {
		return CloudLimits{}, err
	}
	return CloudLimits{Quota: c.quota.Clone(), Region: c.region, AZs: slices.Clone(c.azs)}, nil
}

// Instances returns every instance that exists, in creation order, without counting a
// call or injecting errors. It is the operator's view, for tests and benchmarks.
func (c *Cloud) Instances() []InstanceInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.sweep(now)
	return c.list(now)
}

// Stats returns counters of the cloud: calls by kind ("create", "describe", "delete",
// "list", "limits"), errors by code ("errors.Throttling", ...), "lost_replies" (calls
// that took effect but were answered with an internal error), the instances that exist
// ("instances", and by status "instances.building", "instances.active",
// "instances.deleting"), the totals "instances.created" and "instances.deleted", and
// "instances.duplicate_nodes", the number of node ids (metadata nodepool_node_id) with
// more than one instance that is not being deleted. Over the cloud's whole life,
// "instances.nodes_created" counts the node ids any instance was created for,
// "instances.nodes_created_twice" those with more than one instance created, and
// "instances.max_created_per_node" the most instances created for one node id.
func (c *Cloud) Stats() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.sweep(now)
	out := make(map[string]int64)
	for _, k := range callKinds {
		out[k] = c.calls[k]
	}
	for code, n := range c.errors {
		out["errors."+string(code)] = n
	}
	out["instances"] = int64(len(c.instances))
	for _, s := range []InstanceStatus{StatusBuilding, StatusActive, StatusDeleting} {
		out["instances."+string(s)] = 0
	}
	perNode := make(map[string]int)
	for _, inst := range c.instances {
		st, _, _ := inst.status(now)
		out["instances."+string(st)]++
		if node := inst.info.Metadata[drivers.MetaNodeID]; node != "" && st != StatusDeleting {
			perNode[node]++
		}
	}
	var dup int64
	for _, n := range perNode {
		if n > 1 {
			dup++
		}
	}
	out["instances.duplicate_nodes"] = dup
	var twice, most int64
	for _, n := range c.createdByNode {
		if n > 1 {
			twice++
		}
		most = max(most, n)
	}
	out["instances.nodes_created"] = int64(len(c.createdByNode))
	out["instances.nodes_created_twice"] = twice
	out["instances.max_created_per_node"] = most
	out["instances.created"] = c.created
	out["instances.deleted"] = c.deleted
	out["lost_replies"] = c.lostReplies
	return out
}

// InjectError makes the next call of the kind (see the Call constants) fail with code.
// Injected errors queue up and are answered before any randomly injected one.
func (c *Cloud) InjectError(call string, code ErrorCode) error {
	if !slices.Contains(callKinds, call) {
		return fmt.Errorf("injecting error into call %q: unknown call kind", call)
	}
	if _, ok := errorCodes[code]; !ok {
		return fmt.Errorf("injecting error %q: unknown error code", code)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.injected[call] = append(c.injected[call], code)
	return nil
}

// PeakLiveByNode returns, per node id, the most instances it ever had at once that
// were not being deleted.
func (c *Cloud) PeakLiveByNode() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.peakByNode)
}

// CreationsByNode returns, per node id (metadata nodepool_node_id), how many instances
// were ever created for it, deleted ones included.
func (c *Cloud) CreationsByNode() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.createdByNode)
}

// Faults are the cloud's fault settings that can change while it runs: the cloud keys
// of the same names in [Config].
type Faults struct {
	// APILatency is the time in seconds every API call takes.
	APILatency float64 `json:"api_latency"`
	// ErrorRate is the fraction of calls of each kind that fail with an internal error.
	ErrorRate FaultRates `json:"error_rate"`
	// RateLimitRate is the fraction of calls answered with a throttling error.
	RateLimitRate float64 `json:"rate_limit_rate"`
	// CapacityErrorRate is the fraction of create calls answered with an insufficient
	// capacity error.
	CapacityErrorRate float64 `json:"capacity_error_rate"`
	// LostReplyRate is the fraction of create and delete calls that take effect but are
	// answered with an internal error.
	LostReplyRate float64 `json:"lost_reply_rate"`
}

// FaultRates are the internal error rates of Faults by call kind.
type FaultRates struct {
	Create   float64 `json:"create"`
	Delete   float64 `json:"delete"`
	List     float64 `json:"list"`
	Describe float64 `json:"describe"`
}

// Faults returns the current fault settings.
func (c *Cloud) Faults() Faults {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Faults{
		APILatency: c.apiLatency.Seconds(),
		ErrorRate: FaultRates{
			Create: c.errorRate[CallCreate], Delete: c.errorRate[CallDelete],
			List: c.errorRate[CallList], Describe: c.errorRate[CallDescribe],
		},
		RateLimitRate:     c.rateLimitRate,
		CapacityErrorRate: c.capacityRate,
		LostReplyRate:     c.lostReplyRate,
	}
}

// SetFaults replaces the fault settings; calls already waiting out the API latency keep
// the old latency. The zero value turns every fault off.
func (c *Cloud) SetFaults(f Faults) error {
	cfg := Config{
		APILatency: f.APILatency,
		ErrorRate: ErrorRateConfig{
			Create: f.ErrorRate.Create, Delete: f.ErrorRate.Delete, List: f.ErrorRate.List, Describe: f.ErrorRate.Describe,
		},
		RateLimitRate: f.RateLimitRate, CapacityErrorRate: f.CapacityErrorRate, LostReplyRate: f.LostReplyRate,
	}
	if err := cfg.ValidateCloud(); err != nil {
		return fmt.Errorf("setting faults: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apiLatency = seconds(cfg.APILatency)
	c.errorRate = map[string]float64{
		CallCreate: cfg.ErrorRate.Create, CallDelete: cfg.ErrorRate.Delete,
		CallList: cfg.ErrorRate.List, CallDescribe: cfg.ErrorRate.Describe,
	}
	c.rateLimitRate, c.capacityRate, c.lostReplyRate = cfg.RateLimitRate, cfg.CapacityErrorRate, cfg.LostReplyRate
	c.logger.Info("faults set", "api_latency", cfg.APILatency, "error_rate", cfg.ErrorRate,
		"rate_limit_rate", cfg.RateLimitRate, "capacity_error_rate", cfg.CapacityErrorRate, "lost_reply_rate", cfg.LostReplyRate)
	return nil
}

// latency waits out the configured API latency.
func (c *Cloud) latency(ctx context.Context) error {
	c.mu.Lock()
	d := c.apiLatency
	c.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("waiting for the cloud: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// begin counts a call and removes deleted instances; c.mu is held.
func (c *Cloud) begin(call string) time.Time {
	now := c.now()
	c.calls[call]++
	c.sweep(now)
	return now
}

// faults are the random faults drawn for one call.
type faults struct {
	throttled  bool
	failed     bool
	noCapacity bool
	lostReply  bool
}

// draw takes the random numbers of a call, always the same number of them so that the
// sequence does not depend on the configured rates; c.mu is held.
func (c *Cloud) draw(call string) faults {
	t, f, n, l := c.rng.Float64(), c.rng.Float64(), c.rng.Float64(), c.rng.Float64()
	return faults{
		throttled:  t < c.rateLimitRate,
		failed:     f < c.errorRate[call],
		noCapacity: call == CallCreate && n < c.capacityRate,
		lostReply:  (call == CallCreate || call == CallDelete) && l < c.lostReplyRate,
	}
}

// lose answers a call that took effect with an error, as when a reply is lost; c.mu is
// held.
func (c *Cloud) lose(call string) error {
	c.lostReplies++
	return c.fail(apiErrorf(CodeInternalError, "the reply to the %s call was lost", call))
}

// fault returns the injected or drawn error of a call, if any; c.mu is held.
func (c *Cloud) fault(call string, f faults) error {
	if q := c.injected[call]; len(q) > 0 {
		code := q[0]
		c.injected[call] = q[1:]
		return c.fail(apiErrorf(code, "injected %s error", call))
	}
	if f.throttled {
		return c.fail(apiErrorf(CodeThrottling, "rate exceeded"))
	}
	if f.failed {
		return c.fail(apiErrorf(CodeInternalError, "the cloud failed to %s", call))
	}
	return nil
}

// fail counts an error; c.mu is held.
func (c *Cloud) fail(err *APIError) error {
	c.errors[err.Code]++
	return err
}

// sweep removes the instances whose deletion completed; c.mu is held.
func (c *Cloud) sweep(now time.Time) {
	for id, inst := range c.deleting {
		if now.Before(inst.deleteAt) {
			continue
		}
		delete(c.deleting, id)
		delete(c.instances, id)
		c.used = c.used.Sub(inst.info.Quota())
		c.deleted++
		c.logger.Debug("instance deleted", "external_id", id)
	}
}

// list returns the views of all instances in creation order; c.mu is held.
func (c *Cloud) list(now time.Time) []InstanceInfo {
	insts := slices.Collect(maps.Values(c.instances))
	slices.SortFunc(insts, func(a, b *instance) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]InstanceInfo, len(insts))
	for i, inst := range insts {
		out[i] = inst.view(now)
	}
	return out
}

// status returns the instance's status at now, the index of its boot step and the time
// left in the current step or deletion.
func (i *instance) status(now time.Time) (InstanceStatus, int, time.Duration) {
	if !i.deleteAt.IsZero() {
		return StatusDeleting, 0, max(i.deleteAt.Sub(now), 0)
	}
	end := i.info.Created
	for step, d := range i.steps {
		end = end.Add(d)
		if now.Before(end) {
			return StatusBuilding, step, end.Sub(now)
		}
	}
	return StatusActive, 0, 0
}

// view returns a copy of the instance as the API shows it at now.
func (i *instance) view(now time.Time) InstanceInfo {
	v := i.info
	v.Metadata = maps.Clone(i.info.Metadata)
	v.Status, v.BootStep, v.Remaining = i.status(now)
	v.BootSteps = len(i.steps)
	return v
}

// addresses returns the private IPv4, public IPv4 and public IPv6 address of the
// instance with sequence number seq, from the documentation ranges. IPv4 addresses are
// reused after 254 (private) and 508 (public) instances; IPv6 addresses are unique.
func addresses(seq uint64) (private, public, v6 string) {
	n := seq - 1
	private = netip.AddrFrom4([4]byte{192, 0, 2, byte(n%254 + 1)}).String()
	if p := n % 508; p < 254 {
		public = netip.AddrFrom4([4]byte{198, 51, 100, byte(p + 1)}).String()
	} else {
		public = netip.AddrFrom4([4]byte{203, 0, 113, byte(p - 254 + 1)}).String()
	}
	var b [16]byte
	copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8})
	binary.BigEndian.PutUint64(b[8:], seq)
	v6 = netip.AddrFrom16(b).String()
	return private, public, v6
}
