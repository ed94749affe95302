package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"golang.org/x/sync/errgroup"
)

// LedgerGrant is a ledger's answer to an acquire.
type LedgerGrant struct {
	Granted bool   `json:"granted"`
	Reason  string `json:"reason,omitempty"`
	// Chain is the run chain the answer is for; a run of another chain ignores it.
	Chain string `json:"chain,omitempty"`
	// Ledger is the answering ledger's workflow id (a request talks to its pool's
	// ledger and, with max-concurrency, to its provider's).
	Ledger string `json:"ledger,omitempty"`
}

// GrantDelivery is one answer for one request's workflow.
type GrantDelivery struct {
	RequestID  string      `json:"request_id"`
	WorkflowID string      `json:"workflow_id"`
	Grant      LedgerGrant `json:"grant"`
}

// DeliverGrantsInput are the answers of one ledger decision.
type DeliverGrantsInput struct {
	Signal     string          `json:"signal"`
	Deliveries []GrantDelivery `json:"deliveries"`
}

// DeliverGrantsResult lists the requests whose workflow no longer runs.
type DeliverGrantsResult struct {
	Gone []string `json:"gone,omitempty"`
}

const (
	// deliverConcurrency bounds the signals one delivery sends at once.
	deliverConcurrency = 32
	// deliverAttempts is how often one signal is tried within a delivery before the
	// delivery fails (and is retried whole: a grant delivered twice is answered once).
	deliverAttempts = 3
)

// DeliverGrants signals a ledger's answers to the requests' workflows, many at once.
// A ledger sending them itself (SignalExternalWorkflow) pays one transaction on its own
// workflow per answer to learn that it arrived; in a burst of a thousand requests those
// transactions, one after another on the single ledger, were what the grants waited for.
// Run as a local activity, a batch of answers costs the ledger one marker event.
func (a *Activities) DeliverGrants(ctx context.Context, in DeliverGrantsInput) (DeliverGrantsResult, error) {
	if a.temporal == nil {
		return DeliverGrantsResult{}, invalidConfig("no Temporal client configured for delivering grants")
	}
	gone := make([]bool, len(in.Deliveries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deliverConcurrency)
	for i, d := range in.Deliveries {
		g.Go(func() error {
			var err error
			for attempt := range deliverAttempts {
				if attempt > 0 {
					t := time.NewTimer(time.Duration(attempt) * 200 * time.Millisecond)
					select {
					case <-gctx.Done():
						t.Stop()
						return gctx.Err()
					case <-t.C:
					}
				}
				err = a.temporal.SignalWorkflow(gctx, d.WorkflowID, "", in.Signal, d.Grant)
				var nf *serviceerror.NotFound
				switch {
				case err == nil:
					return nil
				case errors.As(err, &nf):
					gone[i] = true
					return nil
				}
			}
			return fmt.Errorf("signalling %s: %w", d.WorkflowID, err)
		})
	}
	if err := g.Wait(); err != nil {
		return DeliverGrantsResult{}, err
	}
	var out DeliverGrantsResult
	for i, d := range in.Deliveries {
		if gone[i] {
			out.Gone = append(out.Gone, d.RequestID)
		}
	}
	return out, nil
}
