// Package inspect reads what the launcher's workflows know, for the admin CLI's
// explain command: a workflow's execution (status, run, pending activities and
// their attempts) and the answers of the request and ledger workflows' "status"
// queries. It is the only package the admin CLI reaches the Temporal SDK through,
// and of the SDK it uses the client alone: it never starts, signals or changes a
// workflow.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/config"
)

// Temporal Web.
const (
	// DefaultWebURL is Temporal Web of a local development server.
	DefaultWebURL = "http://127.0.0.1:8233"
	// EnvWebURL names the environment variable that overrides DefaultWebURL.
	EnvWebURL = "TEMPORAL_WEB_URL"
)

// QueryStatus is the query every launcher workflow answers with its progress.
const QueryStatus = "status"

// ErrNotFound is returned for a workflow the server does not know.
var ErrNotFound = errors.New("workflow not found")

// WebURL returns the Temporal Web page of a workflow:
// <base>/namespaces/<namespace>/workflows/<workflow id>, each part escaped.
func WebURL(base, namespace, workflowID string) string {
	return strings.TrimRight(base, "/") + "/namespaces/" + url.PathEscape(namespace) +
		"/workflows/" + url.PathEscape(workflowID)
}

// Client reads workflows of one namespace.
type Client struct {
	c  client.Client
	ns string
}

// Dial connects to the Temporal frontend the configuration names (after the
// TEMPORAL_* environment overrides the configuration loader applied), with its TLS
// settings and API key. ctx bounds the connection check.
func Dial(ctx context.Context, t config.Temporal) (*Client, error) {
	opts := client.Options{
		HostPort:  t.Address,
		Namespace: t.Namespace,
		Logger:    quietLogger{},
	}
	if t.UseTLS() {
		tlsCfg, err := t.ClientTLS()
		if err != nil {
			return nil, err
		}
		opts.ConnectionOptions.TLS = tlsCfg
	}
	if t.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to Temporal at %s: %w", t.Address, err)
	}
	return New(c, t.Namespace), nil
}

// New returns a Client over an open SDK client of namespace.
func New(c client.Client, namespace string) *Client {
	return &Client{c: c, ns: namespace}
}

// Namespace returns the client's namespace.
func (c *Client) Namespace() string { return c.ns }

// Close closes the connection.
func (c *Client) Close() { c.c.Close() }

// Execution is what the server says about a workflow's latest run.
type Execution struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// FirstRunID is the first run of the run chain (continue-as-new keeps it).
	FirstRunID string `json:"first_run_id,omitempty"`
	Type       string `json:"type"`
	// Status is Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew or
	// TimedOut.
	Status        string     `json:"status"`
	StartTime     time.Time  `json:"start_time"`
	CloseTime     *time.Time `json:"close_time,omitempty"`
	HistoryLength int64      `json:"history_length"`
	// PendingActivities are the activities scheduled or running now.
	PendingActivities []PendingActivity `json:"pending_activities,omitempty"`
}

// PendingActivity is an activity the workflow waits for.
type PendingActivity struct {
	Type string `json:"type"`
	// State is Scheduled, Started or CancelRequested.
	State string `json:"state"`
	// Attempt counts from 1; MaximumAttempts is 0 for unlimited.
	Attempt         int32  `json:"attempt"`
	MaximumAttempts int32  `json:"maximum_attempts,omitempty"`
	LastFailure     string `json:"last_failure,omitempty"`
}

// Describe returns the latest run of workflow id, or ErrNotFound.
func (c *Client) Describe(ctx context.Context, id string) (*Execution, error) {
	resp, err := c.c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return nil, mapErr(id, err)
	}
	info := resp.GetWorkflowExecutionInfo()
	ex := &Execution{
		WorkflowID:    info.GetExecution().GetWorkflowId(),
		RunID:         info.GetExecution().GetRunId(),
		FirstRunID:    info.GetFirstRunId(),
		Type:          info.GetType().GetName(),
		Status:        info.GetStatus().String(),
		HistoryLength: info.GetHistoryLength(),
	}
	if st := info.GetStartTime(); st != nil {
		ex.StartTime = st.AsTime()
	}
	if ct := info.GetCloseTime(); ct != nil {
		t := ct.AsTime()
		ex.CloseTime = &t
	}
	for _, a := range resp.GetPendingActivities() {
		pa := PendingActivity{
			Type:            a.GetActivityType().GetName(),
			State:           strings.TrimPrefix(a.GetState().String(), "PENDING_ACTIVITY_STATE_"),
			Attempt:         a.GetAttempt(),
			MaximumAttempts: a.GetMaximumAttempts(),
		}
		if f := a.GetLastFailure(); f != nil {
			pa.LastFailure = f.GetMessage()
		}
		ex.PendingActivities = append(ex.PendingActivities, pa)
	}
	return ex, nil
}

// Query asks the latest run of workflow id the query queryType and decodes the
// answer into out. Answering needs a worker of the workflow's task queue: without
// one the call waits until ctx ends.
func (c *Client) Query(ctx context.Context, id, queryType string, out any) error {
	v, err := c.c.QueryWorkflow(ctx, id, "", queryType)
	if err != nil {
		return mapErr(id, err)
	}
	if err := v.Get(out); err != nil {
		return fmt.Errorf("decoding the %s query of %s: %w", queryType, id, err)
	}
	return nil
}

// RequestStatus returns the status query's answer of a request workflow.
func (c *Client) RequestStatus(ctx context.Context, id string) (*RequestStatus, error) {
	var st RequestStatus
	if err := c.Query(ctx, id, QueryStatus, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// LedgerStatus returns the status query's answer of a pool's ledger workflow.
func (c *Client) LedgerStatus(ctx context.Context, id string) (*LedgerStatus, error) {
	var st LedgerStatus
	if err := c.Query(ctx, id, QueryStatus, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// mapErr turns the server's "not found" into ErrNotFound.
func mapErr(id string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return err
}

// quietLogger drops the SDK client's own logging: the CLI reports what matters.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
