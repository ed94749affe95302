// Package names holds every name the launcher derives from its configuration: workflow
// ids, task queues and pool ids. They are part of the launcher's contract with the
// Temporal server (ids of running workflows) and with ZooKeeper (pool ids in
// declined_by), so they are built in exactly one place. The package is a leaf.
package names

import (
	"slices"
	"strconv"
	"strings"
)

// DefaultTaskQueue is the main task queue when the configuration names none.
const DefaultTaskQueue = "nodepool"

// RequestWorkflowID returns the id of the workflow handling a node request.
func RequestWorkflowID(taskQueue, requestID string) string {
	return taskQueue + "/request/" + requestID
}

// DeleteWorkflowID returns the id of the workflow deleting a node.
func DeleteWorkflowID(taskQueue, nodeID string) string {
	return taskQueue + "/delete/" + nodeID
}

// DeleteBatchWorkflowID returns the id of a workflow deleting several nodes at once:
// the first node's id, how many there are, and the starting process's instance and
// sequence number, which keep it unique.
func DeleteBatchWorkflowID(taskQueue, firstNodeID string, count int, instance string, seq uint64) string {
	return taskQueue + "/delete-batch/" + firstNodeID + "+" + strconv.Itoa(count-1) + "/" + instance + "-" + strconv.FormatUint(seq, 10)
}

// LedgerWorkflowID returns the id of a pool's ledger workflow.
func LedgerWorkflowID(taskQueue, provider, pool string) string {
	return taskQueue + "/ledger/" + provider + "/" + pool
}

// ConcurrencyWorkflowID returns the id of the ledger of a provider's launches in
// progress (max-concurrency).
func ConcurrencyWorkflowID(taskQueue, provider string) string {
	return taskQueue + "/concurrency/" + provider
}

// SweepWorkflowID returns the id of a provider's leak sweep workflow.
func SweepWorkflowID(taskQueue, provider string) string {
	return taskQueue + "/sweep/" + provider
}

// MinReadyWorkflowID returns the id of a deployment's min-ready coordinator.
func MinReadyWorkflowID(taskQueue string) string {
	return taskQueue + "/min-ready"
}

// LedgerTaskQueue returns the task queue of the pool ledgers' workflow tasks and
// activities: apart from the request workflows', so that a ledger's answers do not
// queue behind a burst of request workflow tasks.
func LedgerTaskQueue(taskQueue string) string {
	return taskQueue + "-ledger"
}

// ProviderTaskQueue returns the task queue for a provider's driver steps.
func ProviderTaskQueue(taskQueue, provider string) string {
	return taskQueue + "-provider-" + provider
}

// PoolID returns the pool worker id of a pool, in Nodepool's format, without the
// per-process suffix: the id by which the launcher's settings, plans and nodes know the
// pool in every process.
func PoolID(launcher, provider, pool string) string {
	return launcher + "-PoolWorker." + provider + "-" + pool
}

// poolInstanceLen is the length of the suffix that makes a pool id per process: a
// UUID's 32 hexadecimal digits, as Nodepool appends.
const poolInstanceLen = 32

// PoolInstanceID returns the id a launcher process registers a pool under and writes
// into declined_by: the pool id with the process's instance suffix (32 hexadecimal
// digits), as Nodepool does, so that a restarted launcher revisits what it declined.
func PoolInstanceID(poolID, instance string) string {
	return poolID + "-" + instance
}

// IsPoolInstance reports whether id is poolID itself or one of its per-process ids.
// The suffix's fixed form keeps "…-main" from claiming the ids of a pool "…-main-2".
func IsPoolInstance(id, poolID string) bool {
	if id == poolID {
		return true
	}
	rest, ok := strings.CutPrefix(id, poolID+"-")
	if !ok || len(rest) != poolInstanceLen {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// PoolDeclined reports whether a pool counts as having declined a request: when the
// pool is registered, whether one of its registered ids is in declinedBy (a restarted
// launcher registers new ids, so earlier declines are revisited); when it is not,
// whether any id of it is.
func PoolDeclined(declinedBy []string, poolID string, registered []string) bool {
	live := false
	for _, r := range registered {
		if IsPoolInstance(r, poolID) {
			live = true
			if slices.Contains(declinedBy, r) {
				return true
			}
		}
	}
	if live {
		return false
	}
	for _, d := range declinedBy {
		if IsPoolInstance(d, poolID) {
			return true
		}
	}
	return false
}

// PoolDeclineIDs returns the ids to add to declined_by when a pool declines: its
// registered ids (every process that registered it), or the pool id when none is
// registered.
func PoolDeclineIDs(poolID string, registered []string) []string {
	var out []string
	for _, r := range registered {
		if IsPoolInstance(r, poolID) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		out = []string{poolID}
	}
	return out
}

// ownerSep separates a workflow id from its run chain in a lock owner.
const ownerSep = "@"

// LockOwner is the identity a workflow writes into the ZooKeeper lock contenders it
// owns: its workflow id and the id of the first run of its run chain (which survives
// continue-as-new). A new chain of the same workflow id (after an operator terminated
// the old one) is a different owner, so it can tell its predecessor's locks from its
// own and take them over.
func LockOwner(workflowID, chainID string) string {
	if chainID == "" {
		return workflowID
	}
	return workflowID + ownerSep + chainID
}

// ParseLockOwner splits a lock owner into workflow id and chain id. An owner written
// without a chain id yields an empty chain.
func ParseLockOwner(owner string) (workflowID, chainID string) {
	if i := strings.LastIndex(owner, ownerSep); i >= 0 {
		return owner[:i], owner[i+len(ownerSep):]
	}
	return owner, ""
}

// The launch metric the request workflow records through the SDK's metrics handler
// (no history events), and its tags; package metrics turns it into launch counters
// and timers.
const (
	LaunchTimer  = "nodepool_launch"
	TagProvider  = "provider"
	TagAZ        = "az"
	TagRequestor = "requestor"
	TagErrorType = "error_type"
)
