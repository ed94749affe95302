package zookeeper

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestDecodeRequestDefaultsAndNulls(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(t *testing.T, r *NodeRequest)
	}{
		{
			name:  "absent lists and reuse get nodepool defaults",
			input: `{"state": "requested", "node_types": ["a"]}`,
			check: func(t *testing.T, r *NodeRequest) {
				assertEqual(t, "reuse", r.Reuse, true)
				assertEqual(t, "nodes", r.Nodes, []string(nil))
				assertEqual(t, "declined_by", r.DeclinedBy, []string(nil))
				assertEqual(t, "relative_priority", r.RelativePriority, 0)
			},
		},
		{
			name:  "null reuse is falsy as in python",
			input: `{"reuse": null}`,
			check: func(t *testing.T, r *NodeRequest) { assertEqual(t, "reuse", r.Reuse, false) },
		},
		{
			name:  "null and absent pointers are nil",
			input: `{"requestor": null, "provider": null}`,
			check: func(t *testing.T, r *NodeRequest) {
				assertEqual(t, "requestor", r.Requestor, (*string)(nil))
				assertEqual(t, "event_id", r.EventID, (*string)(nil))
			},
		},
		{
			name:  "unknown keys are kept verbatim",
			input: `{"state": "requested", "future_key": {"nested": [1, 2.50, "x"]}, "other": null}`,
			check: func(t *testing.T, r *NodeRequest) {
				assertEqual(t, "future_key", string(r.Extra["future_key"]), `{"nested": [1, 2.50, "x"]}`)
				assertEqual(t, "other", string(r.Extra["other"]), `null`)
				assertEqual(t, "extra size", len(r.Extra), 2)
			},
		},
		{
			name:  "integral float priority",
			input: `{"relative_priority": 3.0}`,
			check: func(t *testing.T, r *NodeRequest) { assertEqual(t, "relative_priority", r.RelativePriority, 3) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeRequest("100-0000000001", []byte(tc.input))
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			tc.check(t, r)
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		wantEmpty bool
	}{
		{"empty", ``, true},
		{"whitespace", " \n", true},
		{"not json", `{"state": `, false},
		{"json null", `null`, false},
		{"array", `[]`, false},
		{"node_types not a list", `{"node_types": "a"}`, false},
		{"node_types with a number", `{"node_types": ["a", 1]}`, false},
		{"state not a string", `{"state": 3}`, false},
		{"reuse not a bool", `{"reuse": "yes"}`, false},
		{"relative_priority a string", `{"relative_priority": "1"}`, false},
		{"state_time a string", `{"state_time": "now"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRequest("100-0000000001", []byte(tc.input))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DecodeError", err)
			}
			assertEqual(t, "path", de.Path, "/nodepool/requests/100-0000000001")
			assertEqual(t, "empty", errors.Is(err, ErrEmptyRecord), tc.wantEmpty)
		})
	}
}

func TestRequestEncodeWritesNodepoolKeys(t *testing.T) {
	r := &NodeRequest{State: StateRequested, NodeTypes: []string{"a"}, Reuse: true}
	data, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"state": `"requested"`, "state_time": `null`, "node_types": `["a"]`, "nodes": `[]`,
		"declined_by": `[]`, "reuse": `true`, "requestor": `null`, "requestor_data": `null`,
		"provider": `null`, "relative_priority": `0`, "event_id": `null`, "created_time": `null`,
		"tenant_name": `null`,
	}
	got := map[string]string{}
	for k, v := range m {
		got[k] = string(v)
	}
	assertEqual(t, "encoded", got, want)
}

func TestRequestExtraDoesNotOverrideModelledKeys(t *testing.T) {
	r := &NodeRequest{State: StateFailed, Extra: map[string]json.RawMessage{"state": json.RawMessage(`"requested"`), "x": json.RawMessage(`1`)}}
	data, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeRequest("100-0000000001", data)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "state", back.State, StateFailed)
	assertEqual(t, "x", string(back.Extra["x"]), "1")
}

func TestRequestPriorityAndSequence(t *testing.T) {
	tests := []struct {
		id, prio, seq string
	}{
		{"200-0000000123", "200", "0000000123"},
		{"099-0000000001", "099", "0000000001"},
		{"900-0000000002", "900", "0000000002"},
		{"nodash", "nodash", ""},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			r := &NodeRequest{ID: tc.id}
			assertEqual(t, "priority", r.Priority(), tc.prio)
			assertEqual(t, "sequence", r.Sequence(), tc.seq)
		})
	}
}

func TestRequestLessOrdersLikeNodepool(t *testing.T) {
	reqs := []*NodeRequest{
		{ID: "300-0000000001"},
		{ID: "200-0000000009", RelativePriority: 1},
		{ID: "200-0000000010", RelativePriority: 0},
		{ID: "100-0000000011", RelativePriority: 5},
		{ID: "200-0000000008", RelativePriority: 1},
		{ID: "099-0000000012", RelativePriority: 9},
		{ID: "900-0000000000"},
	}
	slices.SortFunc(reqs, func(a, b *NodeRequest) int {
		switch {
		case RequestLess(a, b):
			return -1
		case RequestLess(b, a):
			return 1
		}
		return 0
	})
	var got []string
	for _, r := range reqs {
		got = append(got, r.ID)
	}
	assertEqual(t, "order", got, []string{
		"099-0000000012", "100-0000000011", "200-0000000010", "200-0000000008",
		"200-0000000009", "300-0000000001", "900-0000000000",
	})
}

func TestIsNodepoolRequestID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"100-0000000042", true},
		{"099-0000000001", true},
		{"900-1", true},
		{"1000-0000000001", false},
		{"10-0000000001", false},
		{"abc-0000000001", false},
		{"100-", false},
		{"100-00000x0001", false},
		{"4f6c9e7a-1b2c-4d3e-8f90-123456789abc", false},
		{"4f6c9e7a1b2c4d3e8f90123456789abc", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			assertEqual(t, "IsNodepoolRequestID", IsNodepoolRequestID(tc.id), tc.want)
		})
	}
}

func TestPaths(t *testing.T) {
	assertEqual(t, "request", RequestPath("100-0000000001"), "/nodepool/requests/100-0000000001")
	assertEqual(t, "request lock", RequestLockPath("100-0000000001"), "/nodepool/requests-lock/100-0000000001")
	assertEqual(t, "node", NodePath("0000000001"), "/nodepool/nodes/0000000001")
	assertEqual(t, "node lock", NodeLockPath("0000000001"), "/nodepool/nodes/0000000001/lock")
	assertEqual(t, "node id of node lock", nodeIDOfLockPath(NodeLockPath("0000000001")), "0000000001")
	assertEqual(t, "node id of request lock", nodeIDOfLockPath(RequestLockPath("100-0000000001")), "")
	assertEqual(t, "node id of nested path", nodeIDOfLockPath(NodesPath+"/a/b/lock"), "")
}
