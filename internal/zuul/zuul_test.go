package zuul

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestNewValidatesOptions(t *testing.T) {
	_, err := New(nil, Options{})
	require.ErrorContains(t, err, "empty system id")
	c, err := New(nil, Options{SystemID: "z"})
	require.NoError(t, err)
	assert.Equal(t, DefaultLockTimeout, c.opts.LockTimeout)
	assert.Equal(t, DefaultRecheck, c.opts.Recheck)
}

func TestPriorityPrefix(t *testing.T) {
	tests := []struct {
		priority int
		want     string
		wantErr  bool
	}{
		{0, "000", false},
		{99, "099", false},
		{PriorityHigh, "100", false},
		{PriorityNormal - 1, "199", false},
		{PriorityLow, "300", false},
		{MaxPriority, "999", false},
		{-1, "", true},
		{1000, "", true},
	}
	for _, tc := range tests {
		got, err := PriorityPrefix(tc.priority)
		if tc.wantErr {
			assert.Error(t, err, "priority %d", tc.priority)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
}

// TestNewRequest pins the request body Zuul writes (docs: zuul-client.md §3).
func TestNewRequest(t *testing.T) {
	at := time.Unix(1_700_000_000, 500_000_000)
	tests := []struct {
		name   string
		opts   Options
		labels []string
		// want holds the expected keys of the body besides the generated ids.
		want    map[string]any
		wantRD  map[string]any
		wantErr string
	}{
		{
			name:   "with a tenant",
			opts:   Options{SystemID: "sys", Tenant: "tenant-one", Pipeline: "check", Job: "tox"},
			labels: []string{"large", "small", "large"},
			want: map[string]any{
				"state": "requested", "state_time": 1_700_000_000.5, "created_time": 1_700_000_000.5,
				"node_types": []any{"large", "small", "large"}, "requestor": "sys", "provider": nil,
				"relative_priority": float64(0), "tenant_name": "tenant-one",
				"nodes": []any{}, "declined_by": []any{}, "reuse": true,
			},
			wantRD: map[string]any{"tenant_name": "tenant-one", "pipeline_name": "check", "job_name": "tox", "span_info": nil},
		},
		{
			name:   "without a tenant",
			opts:   Options{SystemID: "sys"},
			labels: []string{"small"},
			want: map[string]any{
				"state": "requested", "node_types": []any{"small"}, "requestor": "sys", "tenant_name": nil,
			},
			wantRD: map[string]any{"tenant_name": nil, "pipeline_name": "", "job_name": "", "span_info": nil},
		},
		{name: "no labels", opts: Options{SystemID: "sys"}, wantErr: "no labels"},
		{name: "an empty label", opts: Options{SystemID: "sys"}, labels: []string{"small", ""}, wantErr: "empty label"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = func() time.Time { return at }
			c, err := New(nil, tc.opts)
			require.NoError(t, err)
			r, err := c.NewRequest(tc.labels...)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			data, err := r.Encode()
			require.NoError(t, err)
			var body map[string]any
			require.NoError(t, json.Unmarshal(data, &body))
			for k, v := range tc.want {
				assert.Equal(t, v, body[k], k)
			}
			assert.Regexp(t, `^[0-9a-f]{32}$`, body["event_id"])
			rd, ok := body["requestor_data"].(map[string]any)
			require.True(t, ok, "requestor_data: %v", body["requestor_data"])
			for k, v := range tc.wantRD {
				require.Contains(t, rd, k)
				assert.Equal(t, v, rd[k], "requestor_data."+k)
			}
			assert.Regexp(t, `^[0-9a-f]{32}$`, rd["build_set_uuid"])
			assert.Regexp(t, `^[0-9a-f]{32}$`, rd["job_uuid"])
			assert.NotEqual(t, rd["build_set_uuid"], rd["job_uuid"])
			// The labels are copied, not shared with the caller.
			tc.labels[0] = "changed"
			assert.NotEqual(t, "changed", r.NodeTypes[0])
		})
	}
}

func TestDone(t *testing.T) {
	for _, tc := range []struct {
		state zookeeper.RequestState
		want  bool
	}{
		{zookeeper.StateRequested, false},
		{zookeeper.StatePending, false},
		{zookeeper.StateFulfilled, true},
		{zookeeper.StateFailed, true},
	} {
		assert.Equal(t, tc.want, Done(&zookeeper.NodeRequest{State: tc.state}), string(tc.state))
	}
}

func TestUUIDsDiffer(t *testing.T) {
	a, b := newUUID(), newUUID()
	assert.NotEqual(t, a, b)
	assert.False(t, strings.Contains(a, "-"))
}
