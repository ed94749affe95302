package workflows

import (
	"go.temporal.io/sdk/temporal"
)

// DefaultTaskQueue is the main task queue when the configuration names none.
const DefaultTaskQueue = "nodepool"

// Signal and query names.
const (
	// SignalRequestDeleted tells a request workflow that Zuul deleted its request.
	SignalRequestDeleted = "request-deleted"
	// SignalHoldFailed asks a request workflow to hold the instances of failing
	// attempts for debugging instead of deleting them. Payload: HoldFailed.
	SignalHoldFailed = "hold-failed"
	// SignalCapacity carries a ledger's answer (Grant) to a request workflow.
	SignalCapacity = "capacity"
	// SignalAcquire, SignalBind and SignalRelease are a ledger's inputs.
	SignalAcquire = "acquire"
	SignalBind    = "bind"
	SignalRelease = "release"
	// QueryStatus returns a workflow's progress.
	QueryStatus = "status"
)

// Workflow type names, as registered.
const (
	RequestWorkflowType = "HandleRequest"
	DeleteWorkflowType  = "DeleteNode"
	LedgerWorkflowType  = "PoolLedger"
)

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

// Search attributes the workflows set when the server has them registered.
var (
	SARequestID = temporal.NewSearchAttributeKeyKeyword("NodepoolRequestID")
	SALabel     = temporal.NewSearchAttributeKeyKeywordList("NodepoolLabel")
	SAProvider  = temporal.NewSearchAttributeKeyKeyword("NodepoolProvider")
	SAPool      = temporal.NewSearchAttributeKeyKeyword("NodepoolPool")
	SANodeID    = temporal.NewSearchAttributeKeyKeywordList("NodepoolNodeID")
	SATenant    = temporal.NewSearchAttributeKeyKeyword("NodepoolTenant")
	SAState     = temporal.NewSearchAttributeKeyKeyword("NodepoolState")
)

// SearchAttributeNames maps every search attribute the workflows use to its type name,
// for registration with the server.
var SearchAttributeNames = map[string]string{
	"NodepoolRequestID": "Keyword",
	"NodepoolLabel":     "KeywordList",
	"NodepoolProvider":  "Keyword",
	"NodepoolPool":      "Keyword",
	"NodepoolNodeID":    "KeywordList",
	"NodepoolTenant":    "Keyword",
	"NodepoolState":     "Keyword",
}
