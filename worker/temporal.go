package worker

import (
	"context"
	"fmt"
	"log/slog"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
)

// DialTemporal connects to the Temporal frontend named by the configuration (after the
// standard TEMPORAL_* environment overrides).
func DialTemporal(ctx context.Context, t config.Temporal, logger *slog.Logger) (client.Client, error) {
	opts := client.Options{
		HostPort:  t.Address,
		Namespace: t.Namespace,
		Logger:    log.NewStructuredLogger(logger.With("component", "temporal")),
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
	return c, nil
}

// EnsureSearchAttributes registers the Nodepool* search attributes in the namespace when
// they are missing. It returns false (and logs why) when the server does not allow it;
// the launcher then runs without them.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string, logger *slog.Logger) bool {
	ops := c.OperatorService()
	list, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		logger.Warn("search attributes unavailable; launches are not indexed", "error", err)
		return false
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range workflows.SearchAttributeNames {
		if _, ok := list.CustomAttributes[name]; ok {
			continue
		}
		switch typ {
		case "KeywordList":
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST
		default:
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) == 0 {
		return true
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		logger.Warn("registering search attributes failed; launches are not indexed", "error", err)
		return false
	}
	logger.Info("registered search attributes", "count", len(missing))
	return true
}
