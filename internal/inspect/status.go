package inspect

// The answers of the launcher workflows' status queries, as they travel: JSON with
// the workflows' field names. They are declared here rather than taken from the
// workflows package so that reading them does not link the workflows.

// RequestStatus is a request workflow's progress.
type RequestStatus struct {
	RequestID string `json:"request_id"`
	// Phase is planning, deferred, waiting-for-capacity, accepting, launching,
	// fulfilling or cleaning-up while the workflow runs, then its outcome:
	// fulfilled, declined, skipped, request-deleted or cancelled.
	Phase string `json:"phase"`
	// Reason explains a deferral, decline or skip.
	Reason     string       `json:"reason,omitempty"`
	Provider   string       `json:"provider,omitempty"`
	Pool       string       `json:"pool,omitempty"`
	Nodes      []NodeStatus `json:"nodes"`
	HoldFailed bool         `json:"hold_failed"`
	HeldNodes  []string     `json:"held_nodes,omitempty"`
}

// NodeStatus is the progress of one node of a request.
type NodeStatus struct {
	Index      int    `json:"index"`
	Label      string `json:"label"`
	NodeID     string `json:"node_id,omitempty"`
	Attempt    int    `json:"attempt,omitempty"`
	Step       string `json:"step,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	// State is waiting, building, ready, failed or deleted.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// LedgerStatus is a pool ledger's view of the pool's capacity.
type LedgerStatus struct {
	Provider string           `json:"provider"`
	Pool     string           `json:"pool"`
	Limits   map[string]int64 `json:"limits"`
	Used     map[string]int64 `json:"used"`
	// Waiting lists the first hundred waiting request ids in grant order;
	// WaitingCount counts them all.
	Waiting      []string `json:"waiting"`
	WaitingCount int      `json:"waiting_count"`
	Granted      int      `json:"granted"`
	Nodes        int      `json:"nodes"`
	Paused       bool     `json:"paused"`
}

// Position returns the 1-based place of request id among the waiting requests, or
// 0 when it is not among the listed ones.
func (l *LedgerStatus) Position(id string) int {
	for i, w := range l.Waiting {
		if w == id {
			return i + 1
		}
	}
	return 0
}
