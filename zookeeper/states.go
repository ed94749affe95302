package zookeeper

// RequestState is the state of a node request, as Nodepool and Zuul spell it.
type RequestState string

// Node request states.
const (
	// StateRequested: waiting for a launcher (set by Zuul on creation and by
	// a launcher that declines while other pools may still accept).
	StateRequested RequestState = "requested"
	// StatePending: a launcher locked and accepted the request.
	StatePending RequestState = "pending"
	// StateFulfilled: "nodes" lists one ready, allocated, unlocked node per
	// "node_types" entry, in the same order.
	StateFulfilled RequestState = "fulfilled"
	// StateFailed: every registered pool declined, or launches failed.
	StateFailed RequestState = "failed"
)

// NodeState is the state of a node record.
type NodeState string

// Node states.
const (
	// NodeInit: znode created, not yet locked by its launcher.
	NodeInit NodeState = "init"
	// NodeBuilding: launch in progress; the launcher holds the lock.
	NodeBuilding NodeState = "building"
	// NodeTesting is defined by Nodepool but unused by launchers.
	NodeTesting NodeState = "testing"
	// NodeReady: usable.
	NodeReady NodeState = "ready"
	// NodeInUse: Zuul runs a job on it and holds its lock.
	NodeInUse NodeState = "in-use"
	// NodeUsed: Zuul is done with it; delete it.
	NodeUsed NodeState = "used"
	// NodeHold: kept for debugging until its hold expires.
	NodeHold NodeState = "hold"
	// NodeDeleting: deletion requested or in progress.
	NodeDeleting NodeState = "deleting"
	// NodeDeleted: written just before the znode is removed, so that a racing
	// cleaner that grabbed the lock notices.
	NodeDeleted NodeState = "deleted"
	// NodeFailed: launch failed; delete it.
	NodeFailed NodeState = "failed"
	// NodeAborted: launch hit a transient cloud quota error; relaunch.
	NodeAborted NodeState = "aborted"
)
