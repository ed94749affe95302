package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/nodepool-temporal/nodepool-temporal/workflows"
)

// HistorySummary counts what one workflow execution cost the Temporal server.
type HistorySummary struct {
	WorkflowID string `json:"workflow_id"`
	Events     int    `json:"events"`
	// WorkflowTasks is the number of workflow tasks (each a round trip through the
	// server and a worker).
	WorkflowTasks int `json:"workflow_tasks"`
	// Activities counts scheduled activities by type.
	Activities      map[string]int `json:"activities"`
	ActivityTotal   int            `json:"activity_total"`
	Timers          int            `json:"timers"`
	SignalsSent     int            `json:"signals_sent"`
	SignalsReceived int            `json:"signals_received"`
	Upserts         int            `json:"search_attribute_upserts"`
}

// WorkflowCosts summarises sample workflows of a scenario.
type WorkflowCosts struct {
	Request *HistorySummary `json:"request,omitempty"`
	Delete  *HistorySummary `json:"delete,omitempty"`
	// LedgerEvents is the length of the pool ledger's current history run.
	LedgerEvents int64 `json:"ledger_events"`
	// Error reports why the summary is incomplete.
	Error string `json:"error,omitempty"`
}

// workflowCosts reads the histories of one request's and one node's workflows.
func workflowCosts(ctx context.Context, address, driver, requestID, nodeID string, logger *slog.Logger) WorkflowCosts {
	var out WorkflowCosts
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{
		HostPort: address, Namespace: "default",
		Logger: tlog.NewStructuredLogger(logger.With("component", "temporal-client")),
	})
	if err != nil {
		out.Error = fmt.Sprintf("connecting to Temporal: %v", err)
		return out
	}
	defer c.Close()
	if requestID != "" {
		h, err := summarizeHistory(ctx, c, workflows.RequestWorkflowID(benchTaskQueue, requestID))
		if err != nil {
			out.Error = err.Error()
		}
		out.Request = h
	}
	if nodeID != "" {
		h, err := summarizeHistory(ctx, c, workflows.DeleteWorkflowID(benchTaskQueue, nodeID))
		if err != nil {
			out.Error = err.Error()
		}
		out.Delete = h
	}
	d, err := c.DescribeWorkflowExecution(ctx, workflows.LedgerWorkflowID(benchTaskQueue, providerName(driver), benchPool), "")
	if err == nil {
		out.LedgerEvents = d.GetWorkflowExecutionInfo().GetHistoryLength()
	}
	return out
}

func summarizeHistory(ctx context.Context, c client.Client, workflowID string) (*HistorySummary, error) {
	h := &HistorySummary{WorkflowID: workflowID, Activities: map[string]int{}}
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return h, fmt.Errorf("reading history of %s: %w", workflowID, err)
		}
		h.Events++
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			h.WorkflowTasks++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			h.Activities[ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()]++
			h.ActivityTotal++
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			h.Timers++
		case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			h.SignalsSent++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			h.SignalsReceived++
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			h.Upserts++
		}
	}
	return h, nil
}
