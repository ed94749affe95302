package activities

import (
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// These types are activity inputs and results. They are recorded in workflow histories,
// so their JSON names are a wire format: add fields, never rename them.

// OrderKey orders requests as Nodepool does: priority prefix, then relative priority,
// then the sequence number.
type OrderKey struct {
	Priority         string `json:"priority"`
	RelativePriority int    `json:"relative_priority"`
	Sequence         string `json:"sequence"`
}

// Less reports whether k goes before o.
func (k OrderKey) Less(o OrderKey) bool {
	if k.Priority != o.Priority {
		return k.Priority < o.Priority
	}
	if k.RelativePriority != o.RelativePriority {
		return k.RelativePriority < o.RelativePriority
	}
	return k.Sequence < o.Sequence
}

// Decision is what PlanRequest decided.
type Decision string

// Decisions of PlanRequest.
const (
	DecisionLaunch  Decision = "launch"
	DecisionDecline Decision = "decline"
	DecisionSkip    Decision = "skip"
	// DecisionDefer leaves the request "requested" for now (its tenant is at its
	// limit); the workflow plans again later.
	DecisionDefer Decision = "defer"
)

// PlanInput asks for a plan for one request.
type PlanInput struct {
	RequestID string `json:"request_id"`
	// Owner is the planning workflow's lock owner: a pending request locked by an
	// earlier run chain of the same workflow is recovered, one locked by this chain is
	// resumed.
	Owner string `json:"owner,omitempty"`
	// Acquire, when set, makes planning ask the chosen pool's ledger for the plan's
	// capacity itself (signal "acquire", starting the ledger if it is not running)
	// when the plan is to launch nodes; the plan then says Acquired.
	Acquire *AcquireTarget `json:"acquire,omitempty"`
}

// AcquireTarget is what planning needs to send a request's acquire: the ledger's
// workflow type and signal name, the task queue its id derives from, and the holder.
type AcquireTarget struct {
	TaskQueue    string `json:"task_queue"`
	WorkflowType string `json:"workflow_type"`
	Signal       string `json:"signal"`
	Holder       string `json:"holder"`
	Chain        string `json:"chain"`
}

// NodePlan is the plan for one requested node.
type NodePlan struct {
	Label string            `json:"label"`
	Need  drivers.Resources `json:"need"`
	// Reuse is true when a ready, unallocated node of the pool is expected to serve
	// this node (the request allows reuse): it needs no new capacity.
	Reuse bool `json:"reuse,omitempty"`
}

// Plan is the result of PlanRequest.
type Plan struct {
	Decision Decision `json:"decision"`
	Reason   string   `json:"reason,omitempty"`
	// DeclinePools are the pool ids to add to declined_by when declining.
	DeclinePools []string `json:"decline_pools,omitempty"`

	Provider          string              `json:"provider,omitempty"`
	Pool              string              `json:"pool,omitempty"`
	PoolID            string              `json:"pool_id,omitempty"`
	ProviderTaskQueue string              `json:"provider_task_queue,omitempty"`
	LaunchTimeoutSec  float64             `json:"launch_timeout_sec,omitempty"`
	BootTimeoutSec    float64             `json:"boot_timeout_sec,omitempty"`
	LaunchRetries     int                 `json:"launch_retries,omitempty"`
	PollIntervalSec   float64             `json:"poll_interval_sec,omitempty"`
	Limits            drivers.Resources   `json:"limits,omitempty"`
	Nodes             []NodePlan          `json:"nodes,omitempty"`
	Order             OrderKey            `json:"order"`
	Request           drivers.RequestInfo `json:"request"`
	// NoWait asks the ledger to refuse rather than queue when the pool is full: a
	// min-ready request is declined at quota, as in Nodepool.
	NoWait bool `json:"no_wait,omitempty"`
	// MaxConcurrency caps the provider's launches in progress (0 = unlimited).
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// HostKeyChecking asks for every node's SSH host keys to be scanned before it is
	// ready (upstream's host-key-checking).
	HostKeyChecking bool `json:"host_key_checking,omitempty"`
	// InlineSteps is true when the provider's create steps may run as local activities
	// (ProviderSettings.InlineSteps).
	InlineSteps bool `json:"inline_steps,omitempty"`
	// Acquired is true when planning already sent the acquire (PlanInput.Acquire).
	Acquired bool `json:"acquired,omitempty"`
}

// Acquire is the plan's acquire for holder in run chain chain.
func (p Plan) Acquire(holder, chain, requestID string) LedgerAcquire {
	return LedgerAcquire{
		Holder: holder, Chain: chain, RequestID: requestID,
		Order: p.Order, Need: p.Need(), Limits: p.Limits, NoWait: p.NoWait,
	}
}

// Need returns the total need of the plan's nodes that are to be launched (reused
// nodes exist already).
func (p Plan) Need() drivers.Resources {
	total := drivers.Resources{}
	for _, n := range p.Nodes {
		if !n.Reuse {
			total = total.Add(n.Need)
		}
	}
	return total
}

// Launches returns how many of the plan's nodes are to be launched.
func (p Plan) Launches() int {
	n := 0
	for _, np := range p.Nodes {
		if !np.Reuse {
			n++
		}
	}
	return n
}

// DeclineInput declines a request on behalf of some of our pools.
type DeclineInput struct {
	RequestID string   `json:"request_id"`
	Owner     string   `json:"owner"`
	PoolIDs   []string `json:"pool_ids"`
	Reason    string   `json:"reason"`
}

// DeclineResult tells what the request became.
type DeclineResult struct {
	// State is the request's new state ("requested" or "failed"), or "" if the request
	// was gone or no longer ours to decline.
	State string `json:"state"`
}

// AcceptInput accepts a request and creates its nodes.
type AcceptInput struct {
	RequestID string `json:"request_id"`
	Owner     string `json:"owner"`
	Plan      Plan   `json:"plan"`
	// Bind, when set, makes the acceptance bind the created nodes to the request's
	// grant in the pool's ledger itself (signal "bind", starting the ledger if it is
	// not running) before it returns, instead of leaving that to the workflow.
	Bind *BindTarget `json:"bind,omitempty"`
}

// BindTarget names the ledger that holds a request's grant and the holder to bind
// the request's nodes for.
type BindTarget struct {
	// Ledger is the signal to send, without its payload.
	Ledger SignalLedgerInput `json:"ledger"`
	Holder string            `json:"holder"`
}

// FinishDeleteInput removes a deleted node's znode and returns its capacity.
type FinishDeleteInput struct {
	NodeID string `json:"node_id"`
	Owner  string `json:"owner"`
	// Contender, when known, is the name of Owner's contender holding the node lock
	// (StartDeleteResult.Contender): the node is then removed in one transaction with
	// its lock (zookeeper.Client.RemoveHeldNode).
	Contender string `json:"contender,omitempty"`
	// Ledger is the workflow id of the pool ledger to release the node's capacity to,
	// with Signal, the name of the ledger's release signal.
	Ledger string `json:"ledger"`
	Signal string `json:"signal"`
}

// AcceptResult tells whether the request was accepted and which nodes were created, in
// node_types order.
type AcceptResult struct {
	Accepted bool     `json:"accepted"`
	Gone     bool     `json:"gone,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	NodeIDs  []string `json:"node_ids,omitempty"`
	// Reused marks the nodes (by position) that are ready nodes taken over for the
	// request rather than created.
	Reused []bool `json:"reused,omitempty"`
	// Replan is true when ready nodes the plan counted on were taken meanwhile: the
	// request was left untouched and must be planned again.
	Replan bool `json:"replan,omitempty"`
}

// CreateStepInput advances one node's create state machine by one step.
type CreateStepInput struct {
	NodeID   string              `json:"node_id"`
	Owner    string              `json:"owner"`
	Provider string              `json:"provider"`
	State    drivers.CreateState `json:"state"`
	// MarkReady makes the step that completes the state machine with an instance also
	// write the node ready (as NodeReady does, with Need), for nodes that need no scan
	// after their launch. A failed write fails the step, which is retried from its input
	// (driver steps are idempotent per node and attempt).
	MarkReady bool              `json:"mark_ready,omitempty"`
	Need      drivers.Resources `json:"need,omitempty"`
}

// DeleteStepInput advances a delete state machine by one step.
type DeleteStepInput struct {
	Provider string              `json:"provider"`
	State    drivers.DeleteState `json:"state"`
}

// NodeReadyInput stores a launched instance on its node and marks it ready.
type NodeReadyInput struct {
	NodeID   string            `json:"node_id"`
	Owner    string            `json:"owner"`
	Instance drivers.Instance  `json:"instance"`
	Need     drivers.Resources `json:"need"`
}

// FulfillInput fulfils a request with its nodes.
type FulfillInput struct {
	RequestID string   `json:"request_id"`
	Owner     string   `json:"owner"`
	NodeIDs   []string `json:"node_ids"`
}

// FulfillResult tells whether the request had vanished.
type FulfillResult struct {
	Gone bool `json:"gone"`
}

// ReturnNodeInput gives a ready node taken over for a request back to the pool.
type ReturnNodeInput struct {
	NodeID    string `json:"node_id"`
	Owner     string `json:"owner"`
	RequestID string `json:"request_id"`
}

// NodeRefInput names a node and the lock owner acting on it.
type NodeRefInput struct {
	NodeID string `json:"node_id"`
	Owner  string `json:"owner"`
}

// RequestRefInput names a request and the lock owner acting on it.
type RequestRefInput struct {
	RequestID string `json:"request_id"`
	Owner     string `json:"owner"`
}

// CheckRequestResult tells whether a request still exists and its state.
type CheckRequestResult struct {
	Exists bool   `json:"exists"`
	State  string `json:"state,omitempty"`
}

// HoldInstanceInput records a failed launch's instance as a held node.
type HoldInstanceInput struct {
	Provider       string `json:"provider"`
	Pool           string `json:"pool"`
	PoolID         string `json:"pool_id"`
	Label          string `json:"label"`
	ExternalID     string `json:"external_id"`
	Comment        string `json:"comment"`
	HoldExpiration int    `json:"hold_expiration"`
	TenantName     string `json:"tenant_name,omitempty"`
	Requestor      string `json:"requestor,omitempty"`
	// State is InstanceHeld (the default) or InstanceFailed.
	State string `json:"state,omitempty"`
}

// HoldInstanceResult names the held node.
type HoldInstanceResult struct {
	NodeID string `json:"node_id"`
}

// StartDeleteInput starts the deletion of a node.
type StartDeleteInput struct {
	NodeID string `json:"node_id"`
	Owner  string `json:"owner"`
	// UnlockedForSec is how long the poller saw the node unlocked, and OrphanGraceSec
	// how long a node that should be locked must be unlocked to count as orphaned.
	UnlockedForSec float64 `json:"unlocked_for_sec,omitempty"`
	OrphanGraceSec float64 `json:"orphan_grace_sec,omitempty"`
	// Finish, when set, lets the activity go on to delete the instance itself when the
	// provider allows inline steps (ProviderSettings.InlineSteps): it advances the
	// delete state machine for at most a few seconds and, once the cloud confirms,
	// removes the znode and releases the capacity (as FinishDelete), reporting Deleted.
	Finish *FinishTarget `json:"finish,omitempty"`
}

// FinishTarget names the ledgers a finished deletion releases capacity to: the pool
// ledger of the node's provider and pool (its id derives from TaskQueue), by Signal.
type FinishTarget struct {
	TaskQueue string `json:"task_queue"`
	Signal    string `json:"signal"`
}

// StartDeleteResult tells whether to proceed and what to delete.
type StartDeleteResult struct {
	Proceed    bool   `json:"proceed"`
	Reason     string `json:"reason,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	Provider   string `json:"provider,omitempty"`
	Pool       string `json:"pool,omitempty"`
	TaskQueue  string `json:"task_queue,omitempty"`
	State      string `json:"state,omitempty"`
	// Contender is the name of the lock contender through which Owner holds the node.
	Contender string `json:"contender,omitempty"`
	// Deleted is true when the activity deleted the instance, removed the znode and
	// released the capacity itself (StartDeleteInput.Finish): nothing is left to do.
	Deleted bool `json:"deleted,omitempty"`
	// Delete is the delete state machine's state where an inline deletion stopped
	// short of completion (the cloud needs longer, or a step failed): the workflow goes
	// on from there.
	Delete *drivers.DeleteState `json:"delete,omitempty"`
}

// PoolUsageInput asks for the nodes of a pool, and whether the workflows holding
// capacity grants still run.
type PoolUsageInput struct {
	Provider string      `json:"provider"`
	Pool     string      `json:"pool"`
	Holders  []HolderRef `json:"holders,omitempty"`
}

// HolderRef names a request workflow that holds a capacity grant.
type HolderRef struct {
	RequestID  string `json:"request_id"`
	WorkflowID string `json:"workflow_id"`
	// Chain is the end of the holder's run chain id ("" = any chain).
	Chain string `json:"chain,omitempty"`
}

// PoolUsageResult maps the pool's node ids to the resources they use.
type PoolUsageResult struct {
	Nodes map[string]drivers.Resources `json:"nodes"`
	// Ended lists the request ids of holders whose workflow (of that chain) no longer
	// runs.
	Ended []string `json:"ended,omitempty"`
}

// LedgerAcquire asks a pool ledger for a request's whole capacity. A repeated acquire
// of a waiting request updates its order (Zuul revises relative_priority while
// requests wait).
type LedgerAcquire struct {
	// Holder is the requesting workflow's id; the grant is signalled to it.
	Holder string `json:"holder"`
	// Chain is the holder's run chain id; an acquire from a new chain of the same
	// workflow (the old one was terminated) voids the old chain's grant.
	Chain     string            `json:"chain,omitempty"`
	RequestID string            `json:"request_id"`
	Order     OrderKey          `json:"order"`
	Need      drivers.Resources `json:"need"`
	// Limits are the pool's limits as the requester's plan saw them; the newest win.
	Limits drivers.Resources `json:"limits"`
	// NoWait asks for an answer now: a grant if the pool has room, else a refusal.
	NoWait bool `json:"no_wait,omitempty"`
}

// LedgerBind attaches the nodes created under a grant, with what each uses.
type LedgerBind struct {
	Holder    string                       `json:"holder"`
	RequestID string                       `json:"request_id,omitempty"`
	Nodes     map[string]drivers.Resources `json:"nodes"`
}

// LedgerRelease frees capacity: the listed nodes, or the holder's whole unbound grant
// when NodeIDs is empty.
type LedgerRelease struct {
	Holder    string   `json:"holder,omitempty"`
	RequestID string   `json:"request_id,omitempty"`
	NodeIDs   []string `json:"node_ids,omitempty"`
}

// LedgerStart is what a ledger is started with (the fields of its workflow input that
// a requester knows).
type LedgerStart struct {
	Provider  string `json:"provider"`
	Pool      string `json:"pool"`
	TaskQueue string `json:"task_queue"`
}

// LedgerSignal is one ledger signal's payload; exactly one field is set.
type LedgerSignal struct {
	Acquire *LedgerAcquire `json:"acquire,omitempty"`
	Bind    *LedgerBind    `json:"bind,omitempty"`
	Release *LedgerRelease `json:"release,omitempty"`
}

// arg returns the payload to send.
func (s LedgerSignal) arg() any {
	switch {
	case s.Acquire != nil:
		return *s.Acquire
	case s.Bind != nil:
		return *s.Bind
	case s.Release != nil:
		return *s.Release
	}
	return nil
}

// SignalLedgerInput delivers a signal to a pool ledger, starting the ledger if needed.
type SignalLedgerInput struct {
	WorkflowID   string       `json:"workflow_id"`
	WorkflowType string       `json:"workflow_type"`
	StartInput   LedgerStart  `json:"start_input"`
	Signal       string       `json:"signal"`
	Payload      LedgerSignal `json:"payload"`
}

// StepFailure is attached to a failed state-machine step's error: what the step had
// reached, so that the workflow can clean up an instance the cloud already assigned,
// and how long the cloud asked to wait before trying again.
type StepFailure struct {
	ExternalID string `json:"external_id,omitempty"`
	Step       string `json:"step,omitempty"`
	// RetryAfterSec is set on a capacity error that created nothing: the attempt goes
	// on from State after that long.
	RetryAfterSec float64 `json:"retry_after_sec,omitempty"`
	// State is the state machine's state to go on from (set with RetryAfterSec).
	State *drivers.CreateState `json:"state,omitempty"`
}

// NodeInstanceResult is the instance recorded on a node.
type NodeInstanceResult struct {
	ExternalID string `json:"external_id,omitempty"`
}

// States of a node record made for an instance outside its launch (HoldInstance).
const (
	// InstanceHeld keeps the instance for inspection until its hold expires.
	InstanceHeld = "hold"
	// InstanceFailed has the instance deleted by the deletion workflow.
	InstanceFailed = "failed"
)
