package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nodepool-temporal/nodepool-temporal/tools/devtemporal/internal/flags"
)

// workflowService is the gRPC health service name clients check, as the
// SDK's CheckHealth does.
const workflowService = "temporal.api.workflowservice.v1.WorkflowService"

// pollInterval is the pause between readiness probes.
const pollInterval = 50 * time.Millisecond

// namespaceRefresh is how long a service may take to see a namespace update:
// the server's default namespace cache refresh interval
// (system.namespaceCacheRefreshInterval, 2 s) plus a margin.
const namespaceRefresh = 2500 * time.Millisecond

// awaitReady waits until the frontend at addr reports SERVING, registers the
// custom search attributes missing from any namespace, and waits until every
// namespace answers a visibility query that names all of them, so that a
// client may use them as soon as this returns. Attributes added to a
// namespace of an earlier run are aliases in the namespace record, which each
// service reloads on its own schedule; once the frontend accepts them,
// awaitReady waits one more refresh interval so that the history service
// (which checks upserts) has them too.
func awaitReady(ctx context.Context, addr string, opts flags.Options) error {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The first dials race the frontend's listener; gRPC's default
		// reconnect backoff (1 s, growing) would delay readiness by seconds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: pollInterval, Multiplier: 1.2, Jitter: 0.1, MaxDelay: 250 * time.Millisecond},
			MinConnectTimeout: 2 * time.Second,
		}),
	)
	if err != nil {
		return fmt.Errorf("connecting to frontend %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()

	health := healthpb.NewHealthClient(conn)
	err = poll(ctx, func(ctx context.Context) error {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: workflowService})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("status %s", resp.GetStatus())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("waiting for frontend %s health: %w", addr, err)
	}

	operator := operatorservice.NewOperatorServiceClient(conn)
	workflows := workflowservice.NewWorkflowServiceClient(conn)
	added := false
	for _, ns := range opts.Namespaces {
		addedHere, err := ensureSearchAttributes(ctx, operator, ns, opts.SearchAttributes)
		if err != nil {
			return err
		}
		added = added || addedHere
		query := probeQuery(opts.SearchAttributes)
		err = poll(ctx, func(ctx context.Context) error {
			_, err := workflows.CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{
				Namespace: ns,
				Query:     query,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("waiting for namespace %s to accept its search attributes: %w", ns, err)
		}
	}
	if added {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for services to reload namespaces: %w", ctx.Err())
		case <-time.After(namespaceRefresh):
		}
	}
	return nil
}

// ensureSearchAttributes adds to namespace ns those of attrs it lacks and
// reports whether it added any. A namespace created by this run already has
// them; one from an earlier run of a persistent database may not.
func ensureSearchAttributes(ctx context.Context, operator operatorservice.OperatorServiceClient, ns string, attrs []flags.SearchAttribute) (bool, error) {
	var have map[string]enumspb.IndexedValueType
	err := poll(ctx, func(ctx context.Context) error {
		resp, err := operator.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
		if err != nil {
			return err
		}
		have = resp.GetCustomAttributes()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("listing search attributes of namespace %s: %w", ns, err)
	}

	missing := make(map[string]enumspb.IndexedValueType)
	for _, sa := range attrs {
		t, ok := have[sa.Name]
		switch {
		case !ok:
			missing[sa.Name] = sa.Type
		case t != sa.Type:
			return false, fmt.Errorf("search attribute %s in namespace %s: registered as %s, want %s", sa.Name, ns, t, sa.Type)
		}
	}
	if len(missing) == 0 {
		return false, nil
	}
	_, err = operator.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        ns,
		SearchAttributes: missing,
	})
	if err != nil {
		return false, fmt.Errorf("adding search attributes to namespace %s: %w", ns, err)
	}
	return true, nil
}

// probeQuery returns a visibility query naming every attribute in attrs, which
// the frontend rejects while any of them is unknown to it.
func probeQuery(attrs []flags.SearchAttribute) string {
	terms := make([]string, 0, len(attrs))
	for _, sa := range attrs {
		terms = append(terms, "`"+sa.Name+"` IS NULL")
	}
	return strings.Join(terms, " AND ")
}

// poll calls probe every pollInterval until it returns nil or ctx ends, in
// which case it returns the last probe error joined with the context's.
func poll(ctx context.Context, probe func(ctx context.Context) error) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}
