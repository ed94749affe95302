package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
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
	// Nodes is how many nodes a batch deletion (DeleteNodes) deleted, the sample's
	// among them; 0 for other workflows.
	Nodes int `json:"nodes,omitempty"`
	// Timeline lists the history's milestones (activities, timers, signals, the end)
	// in seconds since Zuul's action: the submit of the request, or "used" of the node.
	Timeline []TimelineEntry `json:"timeline"`
}

// TimelineEntry is one milestone of a workflow history.
type TimelineEntry struct {
	At    float64 `json:"at"`
	Event string  `json:"event"`
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

// workflowSample names the workflows whose histories are summarised, with the times
// Zuul acted on them.
type workflowSample struct {
	RequestID string
	Submitted time.Time
	NodeID    string
	Used      time.Time
}

// workflowCosts reads the histories of one request's and one node's workflows.
func workflowCosts(ctx context.Context, address, driver string, sample workflowSample, logger *slog.Logger) WorkflowCosts {
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
	if sample.RequestID != "" {
		h, err := summarizeHistory(ctx, c, names.RequestWorkflowID(benchTaskQueue, sample.RequestID), sample.Submitted)
		if err != nil {
			out.Error = err.Error()
		}
		out.Request = h
	}
	if sample.NodeID != "" {
		id, nodes, err := findDeletion(ctx, c, sample.NodeID)
		if err != nil {
			out.Error = err.Error()
		} else {
			// A batch's nodes are gone before its workflow task completes: summarize the
			// whole workflow, not its beginning.
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			_ = c.GetWorkflow(wctx, id, "").Get(wctx, nil)
			cancel()
			h, err := summarizeHistory(ctx, c, id, sample.Used)
			if err != nil {
				out.Error = err.Error()
			}
			h.Nodes = nodes
			out.Delete = h
		}
	}
	d, err := c.DescribeWorkflowExecution(ctx, names.LedgerWorkflowID(benchTaskQueue, providerName(driver), benchPool), "")
	if err == nil {
		out.LedgerEvents = d.GetWorkflowExecutionInfo().GetHistoryLength()
	}
	return out
}

// findDeletion returns the id of the workflow that deleted node id: its own DeleteNode
// workflow, or the DeleteNodes batch that it was part of (with the batch's size).
func findDeletion(ctx context.Context, c client.Client, id string) (string, int, error) {
	single := names.DeleteWorkflowID(benchTaskQueue, id)
	if _, err := c.DescribeWorkflowExecution(ctx, single, ""); err == nil {
		return single, 0, nil
	}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = '" + workflows.DeleteBatchWorkflowType + "'", NextPageToken: token,
		})
		if err != nil {
			return "", 0, fmt.Errorf("listing batch deletions: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			wid := e.GetExecution().GetWorkflowId()
			it := c.GetWorkflowHistory(ctx, wid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			if !it.HasNext() {
				continue
			}
			ev, err := it.Next()
			if err != nil {
				return "", 0, fmt.Errorf("reading history of %s: %w", wid, err)
			}
			var in workflows.DeleteNodesInput
			if err := converter.GetDefaultDataConverter().FromPayloads(ev.GetWorkflowExecutionStartedEventAttributes().GetInput(), &in); err != nil {
				continue
			}
			for _, n := range in.Nodes {
				if n.NodeID == id {
					return wid, len(in.Nodes), nil
				}
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return "", 0, fmt.Errorf("no workflow deleted node %s", id)
		}
	}
}

func summarizeHistory(ctx context.Context, c client.Client, workflowID string, origin time.Time) (*HistorySummary, error) {
	h := &HistorySummary{WorkflowID: workflowID, Activities: map[string]int{}}
	// Activity and timer names by the id of their scheduling event.
	names := map[int64]string{}
	mark := func(ev *historypb.HistoryEvent, what string) {
		at := ev.GetEventTime().AsTime().Sub(origin).Seconds()
		h.Timeline = append(h.Timeline, TimelineEntry{At: at, Event: what})
	}
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return h, fmt.Errorf("reading history of %s: %w", workflowID, err)
		}
		h.Events++
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			mark(ev, "started")
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			h.WorkflowTasks++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			mark(ev, "workflow task started")
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			mark(ev, "workflow task completed")
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			names[ev.GetEventId()] = name
			h.Activities[name]++
			h.ActivityTotal++
			mark(ev, name+" scheduled")
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			mark(ev, names[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]+" started")
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			mark(ev, names[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]+" completed")
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			mark(ev, names[ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId()]+" failed")
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			h.Timers++
			d := ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration()
			mark(ev, fmt.Sprintf("timer %s started", d))
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			mark(ev, "timer fired")
		case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			h.SignalsSent++
			mark(ev, "signal "+ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName()+" sent")
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			h.SignalsReceived++
			mark(ev, "signal "+ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()+" received")
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			h.Upserts++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			mark(ev, "completed")
		}
	}
	return h, nil
}
