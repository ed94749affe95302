// Package names holds every name the launcher derives from its configuration: workflow
// ids, task queues and pool ids. They are part of the launcher's contract with the
// Temporal server (ids of running workflows) and with ZooKeeper (pool ids in
// declined_by), so they are built in exactly one place. The package is a leaf.
package names

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

// LedgerWorkflowID returns the id of a pool's ledger workflow.
func LedgerWorkflowID(taskQueue, provider, pool string) string {
	return taskQueue + "/ledger/" + provider + "/" + pool
}

// SweepWorkflowID returns the id of a provider's leak sweep workflow.
func SweepWorkflowID(taskQueue, provider string) string {
	return taskQueue + "/sweep/" + provider
}

// ProviderTaskQueue returns the task queue for a provider's driver steps.
func ProviderTaskQueue(taskQueue, provider string) string {
	return taskQueue + "-provider-" + provider
}

// PoolID returns the pool worker id of a pool, in Nodepool's format.
func PoolID(launcher, provider, pool string) string {
	return launcher + "-PoolWorker." + provider + "-" + pool
}
