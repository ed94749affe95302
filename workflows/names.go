package workflows

import (
	"go.temporal.io/sdk/temporal"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
)

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
	// SignalBatch carries several of a ledger's inputs at once (LedgerBatch), as the
	// activities send them when many requests plan or bind together.
	SignalBatch = activities.LedgerBatchSignal
	// SignalRequestUpdated tells a request workflow that Zuul revised its request
	// while it waits (relative_priority). Payload: RequestUpdated.
	SignalRequestUpdated = "request-updated"
	// QueryStatus returns a workflow's progress.
	QueryStatus = "status"
)

// Workflow type names, as registered.
const (
	RequestWorkflowType = "HandleRequest"
	DeleteWorkflowType  = "DeleteNode"
	// DeleteBatchWorkflowType deletes several nodes in one workflow (DeleteNodes).
	DeleteBatchWorkflowType = "DeleteNodes"
	LedgerWorkflowType      = "PoolLedger"
)

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

// RequestUpdated is the payload of SignalRequestUpdated: the request's current values.
type RequestUpdated struct {
	RelativePriority int `json:"relative_priority"`
}
