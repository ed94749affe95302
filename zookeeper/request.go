package zookeeper

import (
	"encoding/json"
	"strings"
)

// NodeRequest is a node request record at /nodepool/requests/<id>.
//
// Absent fields get Nodepool's reader defaults (nodes and declined_by empty,
// reuse true). Keys this type does not model are kept in Extra and written
// back unchanged, so rewriting a request never loses what its requestor
// stored.
type NodeRequest struct {
	// ID is the znode name, "<priority>-<sequence>"; not part of the JSON.
	ID string `json:"-"`
	// Version is the znode data version the record was read at; UpdateRequest
	// writes only if the znode still has it. Not part of the JSON.
	Version int32 `json:"-"`

	// State is the request state ("state").
	State RequestState
	// StateTime is the unix time of the last state change ("state_time").
	StateTime float64
	// NodeTypes lists the requested labels in order, duplicates allowed
	// ("node_types").
	NodeTypes []string
	// Nodes lists the node ids that fulfil the request, in NodeTypes order
	// ("nodes").
	Nodes []string
	// DeclinedBy lists the pool worker ids that declined ("declined_by").
	DeclinedBy []string
	// Reuse allows ready nodes to satisfy the request; false means only
	// freshly launched nodes ("reuse", default true).
	Reuse bool
	// Requestor identifies the requestor, e.g. Zuul's system id or
	// "NodePool:min-ready" ("requestor").
	Requestor *string
	// RequestorData is opaque requestor data, kept verbatim
	// ("requestor_data").
	RequestorData json.RawMessage
	// Provider is the preferred provider ("provider").
	Provider *string
	// RelativePriority orders requests within one priority prefix; lower is
	// more urgent ("relative_priority").
	RelativePriority int
	// EventID correlates log lines ("event_id").
	EventID *string
	// CreatedTime is the submission time ("created_time").
	CreatedTime *float64
	// TenantName is the Zuul tenant, used for tenant limits and copied onto
	// nodes ("tenant_name").
	TenantName *string

	// Extra holds every key this type does not model, written back unchanged.
	Extra map[string]json.RawMessage
}

// DecodeRequest decodes the JSON of request id. It returns a *DecodeError for
// data that is not a JSON object or has a modelled field of the wrong type.
func DecodeRequest(id string, data []byte) (*NodeRequest, error) {
	r, err := decodeRequest(data)
	if err != nil {
		return nil, &DecodeError{Path: RequestPath(id), Err: err}
	}
	r.ID = id
	return r, nil
}

func decodeRequest(data []byte) (*NodeRequest, error) {
	o, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	r := &NodeRequest{}
	state, err := o.str("state")
	if err != nil {
		return nil, err
	}
	r.State = RequestState(state)
	if r.StateTime, err = o.float("state_time"); err != nil {
		return nil, err
	}
	if r.NodeTypes, err = o.strings("node_types"); err != nil {
		return nil, err
	}
	if r.Nodes, err = o.strings("nodes"); err != nil {
		return nil, err
	}
	if r.DeclinedBy, err = o.strings("declined_by"); err != nil {
		return nil, err
	}
	if r.Reuse, err = o.boolean("reuse", true); err != nil {
		return nil, err
	}
	if r.Requestor, err = o.strPtr("requestor"); err != nil {
		return nil, err
	}
	r.RequestorData = o.raw("requestor_data")
	if r.Provider, err = o.strPtr("provider"); err != nil {
		return nil, err
	}
	if r.RelativePriority, err = o.int("relative_priority"); err != nil {
		return nil, err
	}
	if r.EventID, err = o.strPtr("event_id"); err != nil {
		return nil, err
	}
	if r.CreatedTime, err = o.floatPtr("created_time"); err != nil {
		return nil, err
	}
	if r.TenantName, err = o.strPtr("tenant_name"); err != nil {
		return nil, err
	}
	r.Extra = o.rest()
	return r, nil
}

// Encode returns the request's JSON: every Nodepool request key (nulls
// included, lists never null) plus the Extra keys.
func (r *NodeRequest) Encode() ([]byte, error) {
	w := newWriter(r.Extra)
	w.set("state", strOrNull(string(r.State)))
	w.set("state_time", floatOrNull(r.StateTime))
	w.set("node_types", stringsOrEmpty(r.NodeTypes))
	w.set("nodes", stringsOrEmpty(r.Nodes))
	w.set("declined_by", stringsOrEmpty(r.DeclinedBy))
	w.set("reuse", r.Reuse)
	w.set("requestor", r.Requestor)
	w.setRaw("requestor_data", r.RequestorData)
	w.set("provider", r.Provider)
	w.set("relative_priority", r.RelativePriority)
	w.set("event_id", r.EventID)
	w.set("created_time", r.CreatedTime)
	w.set("tenant_name", r.TenantName)
	return w.bytes()
}

// Priority returns the priority prefix of the request id (the part before the
// first '-'), e.g. "200" for "200-0000000123".
func (r *NodeRequest) Priority() string {
	prio, _, _ := strings.Cut(r.ID, "-")
	return prio
}

// Sequence returns the sequence part of the request id (after the first
// '-'), e.g. "0000000123" for "200-0000000123".
func (r *NodeRequest) Sequence() string {
	_, seq, _ := strings.Cut(r.ID, "-")
	return seq
}

// RequestLess orders requests the way Nodepool serves them: by priority prefix
// (as a string), then relative priority, then sequence (as a string), with
// the id as a final tie-breaker. Nodepool HEAD first sorts by the number of
// requested labels the pool cannot serve; a pool that does so applies that
// key before this order.
func RequestLess(a, b *NodeRequest) bool {
	if pa, pb := a.Priority(), b.Priority(); pa != pb {
		return pa < pb
	}
	if a.RelativePriority != b.RelativePriority {
		return a.RelativePriority < b.RelativePriority
	}
	if sa, sb := a.Sequence(), b.Sequence(); sa != sb {
		return sa < sb
	}
	return a.ID < b.ID
}
