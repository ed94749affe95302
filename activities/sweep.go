package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Leak sweep limits.
const (
	// MaxSweepSuspects bounds the suspects a pass returns, so that the sweep
	// workflow's state and history stay small however much has leaked. Suspects are
	// kept in key order; those beyond the bound are suspected again on the next pass
	// and deleted one pass later.
	MaxSweepSuspects = 1000
	// maxSweepErrors bounds the deletion errors a pass reports.
	maxSweepErrors = 5
)

// SweepLeaksInput asks for one leak sweep pass over a provider.
type SweepLeaksInput struct {
	Provider string `json:"provider"`
	// Suspects are the keys (see SweepKey) of the resources the previous pass found
	// leaked. A resource found leaked again is deleted.
	Suspects []string `json:"suspects,omitempty"`
}

// SweepLeaksResult is the outcome of one leak sweep pass.
type SweepLeaksResult struct {
	// Resources counts the provider's resources the cloud listed (tagged with the
	// provider's name).
	Resources int `json:"resources"`
	// Leaked counts the resources found with no node record in this pass.
	Leaked int `json:"leaked"`
	// Deleted lists the keys of the resources deleted in this pass.
	Deleted []string `json:"deleted,omitempty"`
	// Suspects are the keys of the resources to delete if the next pass finds them
	// leaked again, sorted: the ones newly found leaked and the ones whose deletion
	// failed.
	Suspects []string `json:"suspects,omitempty"`
	// Errors are the first few deletion errors of the pass.
	Errors []string `json:"errors,omitempty"`
}

// SweepKey identifies a cloud resource across sweep passes: its type and id.
func SweepKey(r drivers.Resource) string { return r.Type + "/" + r.ID }

// sweepKnown is what ZooKeeper knows of a provider's nodes.
type sweepKnown struct {
	// nodeIDs are the ids of the provider's node records, and of every record whose
	// provider cannot be read (an empty or malformed znode).
	nodeIDs map[string]bool
	// externalIDs are the cloud ids the provider's node records name.
	externalIDs map[string]bool
}

// SweepLeaks is one pass of a provider's leak sweep. It lists the resources the
// provider's cloud holds with the provider's name in their metadata, then every node
// record in ZooKeeper, and finds the resources of nodes that no longer exist: a
// resource is leaked when its node id (metadata nodepool_node_id) names no node record
// of the provider and no node record of the provider names it as its external id. A
// leaked resource that the previous pass found leaked too (in.Suspects) is deleted;
// the others become the next pass's suspects.
//
// The cloud is listed before ZooKeeper is read. A node record is written before its
// instance is created, so an instance that the listing shows has a record that the
// later read finds, unless the node is gone for good. Resources without a node id
// (image uploads, say) are never touched.
func (a *Activities) SweepLeaks(ctx context.Context, in SweepLeaksInput) (SweepLeaksResult, error) {
	d, ok := a.drivers[in.Provider]
	if !ok {
		return SweepLeaksResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("provider %q is not configured in this launcher", in.Provider), ErrTypeInvalidConfig, nil)
	}
	resources, err := d.ListResources(ctx)
	if err != nil {
		return SweepLeaksResult{}, sweepDriverError("listing resources of provider "+in.Provider, err)
	}
	activity.RecordHeartbeat(ctx, "listed")
	known, err := a.sweepKnownNodes(ctx, in.Provider)
	if err != nil {
		return SweepLeaksResult{}, err
	}

	previous := make(map[string]bool, len(in.Suspects))
	for _, k := range in.Suspects {
		previous[k] = true
	}
	ours := make([]drivers.Resource, 0, len(resources))
	for _, r := range resources {
		if r.Metadata[drivers.MetaProviderName] == in.Provider {
			ours = append(ours, r)
		}
	}
	sort.Slice(ours, func(i, j int) bool { return SweepKey(ours[i]) < SweepKey(ours[j]) })

	out := SweepLeaksResult{Resources: len(ours)}
	for _, r := range ours {
		nodeID := r.Metadata[drivers.MetaNodeID]
		if nodeID == "" || known.nodeIDs[nodeID] || known.externalIDs[r.ID] {
			continue
		}
		out.Leaked++
		key := SweepKey(r)
		if !previous[key] {
			out.Suspects = append(out.Suspects, key)
			continue
		}
		activity.RecordHeartbeat(ctx, key)
		a.logger.Warn("deleting leaked resource", "provider", in.Provider, "type", r.Type, "id", r.ID,
			"node_id", nodeID, "metadata", r.Metadata)
		if err := d.DeleteResource(ctx, r); err != nil {
			if ctx.Err() != nil {
				return SweepLeaksResult{}, ctx.Err()
			}
			a.logger.Warn("deleting leaked resource failed", "provider", in.Provider, "type", r.Type, "id", r.ID,
				"error", err)
			if len(out.Errors) < maxSweepErrors {
				out.Errors = append(out.Errors, fmt.Sprintf("deleting %s: %v", key, err))
			}
			out.Suspects = append(out.Suspects, key)
			continue
		}
		out.Deleted = append(out.Deleted, key)
		a.recorder.Leaked(in.Provider, r.Type)
	}
	// Keys are appended in sorted order; the bound keeps the first ones.
	if len(out.Suspects) > MaxSweepSuspects {
		out.Suspects = out.Suspects[:MaxSweepSuspects]
	}
	return out, nil
}

// sweepKnownNodes reads every node record and collects what the provider's records
// know. A record that vanishes while being read is skipped; one that cannot be decoded
// counts as the provider's by id, so that its instance is never taken for a leak. Any
// other read error fails the pass: a node that could not be read must not make its
// instance look leaked.
func (a *Activities) sweepKnownNodes(ctx context.Context, provider string) (sweepKnown, error) {
	known := sweepKnown{nodeIDs: map[string]bool{}, externalIDs: map[string]bool{}}
	ids, err := a.zk.ListNodes(ctx)
	if err != nil {
		return sweepKnown{}, fmt.Errorf("listing nodes: %w", err)
	}
	for i, id := range ids {
		if i%50 == 49 {
			activity.RecordHeartbeat(ctx, "nodes", i)
		}
		n, err := a.zk.GetNode(ctx, id)
		if errors.Is(err, zookeeper.ErrNotFound) {
			continue
		}
		var de *zookeeper.DecodeError
		if errors.As(err, &de) {
			known.nodeIDs[id] = true
			continue
		}
		if err != nil {
			return sweepKnown{}, fmt.Errorf("reading node %s: %w", id, err)
		}
		if n.Provider != provider && n.Provider != "" {
			continue
		}
		known.nodeIDs[id] = true
		for _, x := range sweepExternalIDs(n.ExternalID) {
			known.externalIDs[x] = true
		}
	}
	return known, nil
}

// sweepExternalIDs returns the cloud ids a node's external id names: the string of a
// string id; every string member of an object id (AWS stores {"instance": "i-…"},
// with "host" for a dedicated host) and its compact text; the text of anything else.
func sweepExternalIDs(raw json.RawMessage) []string {
	t := strings.TrimSpace(string(raw))
	if t == "" || t == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err == nil {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			if v, ok := obj[k].(string); ok && v != "" {
				out = append(out, v)
			}
		}
		if b, err := json.Marshal(obj); err == nil {
			out = append(out, string(b))
		}
		return out
	}
	return []string{t}
}

// sweepDriverError translates a driver error of a sweep pass: permanent errors are not
// retried, anything else is.
func sweepDriverError(op string, err error) error {
	nonRetryable := drivers.KindOf(err) == drivers.KindPermanent
	typ := ErrTypeTransient
	if nonRetryable {
		typ = ErrTypePermanent
	}
	return temporal.NewApplicationErrorWithOptions(fmt.Sprintf("%s: %v", op, err), typ,
		temporal.ApplicationErrorOptions{NonRetryable: nonRetryable, Cause: err})
}
