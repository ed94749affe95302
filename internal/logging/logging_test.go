package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
)

// stamp is the time of every test record.
var stamp = time.Date(2025, 3, 1, 12, 0, 5, 123_000_000, time.Local)

// emit logs one record at stamp through a handler of format built by build.
func emit(t *testing.T, format string, level slog.Level, build func(*slog.Logger) *slog.Logger, msg string, args ...any) string {
	t.Helper()
	var b bytes.Buffer
	h, err := NewHandler(&b, Options{Format: format, Level: slog.LevelDebug})
	require.NoError(t, err)
	l := slog.New(h)
	if build != nil {
		l = build(l)
	}
	r := slog.NewRecord(stamp, level, msg, 0)
	r.Add(args...)
	require.NoError(t, l.Handler().Handle(context.Background(), r))
	return b.String()
}

func TestTextFormat(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level
		build func(*slog.Logger) *slog.Logger
		msg   string
		args  []any
		want  string
	}{
		{
			name: "phase change of a request workflow",
			build: func(l *slog.Logger) *slog.Logger {
				return l.With("component", "temporal", "WorkflowType", "HandleRequest", "request_id", "200-0000000042")
			},
			msg:  "phase",
			args: []any{"phase", "launching", "event_id", "5f3c"},
			want: "2025-03-01 12:00:05,123 INFO nodepool.driver.NodeRequestHandler: [e: 5f3c] [node_request: 200-0000000042] " +
				"phase WorkflowType=HandleRequest phase=launching\n",
		},
		{
			name: "a node's launch attempt",
			build: func(l *slog.Logger) *slog.Logger {
				return l.With("WorkflowType", "HandleRequest", "request_id", "200-0000000042")
			},
			level: slog.LevelWarn,
			msg:   "launch attempt failed",
			args:  []any{"node_id", "0000000007", "attempt", 1, "error", errors.New("boom: quota")},
			want: "2025-03-01 12:00:05,123 WARNING nodepool.NodeLauncher: [node_request: 200-0000000042] [node: 0000000007] " +
				`launch attempt failed WorkflowType=HandleRequest attempt=1 error="boom: quota"` + "\n",
		},
		{
			name:  "explicit logger name wins",
			build: func(l *slog.Logger) *slog.Logger { return Named(l, "nodepool.Custom") },
			msg:   "hello",
			args:  []any{"provider", "sim", "pool", "main"},
			want:  "2025-03-01 12:00:05,123 INFO nodepool.Custom: hello provider=sim pool=main\n",
		},
		{
			name:  "pool worker from provider and pool",
			level: slog.LevelDebug,
			build: func(l *slog.Logger) *slog.Logger { return l.With("component", "poller") },
			msg:   "registered pool",
			args:  []any{"provider", "sim", "pool", "main"},
			want:  "2025-03-01 12:00:05,123 DEBUG nodepool.PoolWorker.sim-main: registered pool provider=sim pool=main\n",
		},
		{
			name:  "deletion activity",
			build: func(l *slog.Logger) *slog.Logger { return l.With("component", "activities") },
			msg:   "deleting node",
			args:  []any{"node_id", "0000000009", "reason", "used"},
			want:  "2025-03-01 12:00:05,123 INFO nodepool.DeletedNodeWorker: [node: 0000000009] deleting node reason=used\n",
		},
		{
			name:  "empty context values are left out",
			level: slog.LevelError,
			msg:   "no request",
			args:  []any{"request_id", "", "event_id", (*string)(nil)},
			want:  "2025-03-01 12:00:05,123 ERROR nodepool.NodePool: no request\n",
		},
		{
			name: "the last value of a context key wins and is not repeated",
			build: func(l *slog.Logger) *slog.Logger {
				return l.With("component", "activities", "request_id", "100-0000000001")
			},
			msg:  "declined node request",
			args: []any{"request_id", "100-0000000001", "event_id", ptr("ev"), "reason", ""},
			want: "2025-03-01 12:00:05,123 INFO nodepool.driver.NodeRequestHandler: [e: ev] [node_request: 100-0000000001] " +
				`declined node request reason=""` + "\n",
		},
		{
			name:  "groups are flattened and values quoted",
			build: func(l *slog.Logger) *slog.Logger { return l.WithGroup("g").With("a", "x y") },
			msg:   "grouped",
			args:  []any{slog.Group("h", "b", 2), "d", 1500 * time.Millisecond, "k=v", "q\"uote"},
			want:  `2025-03-01 12:00:05,123 INFO nodepool.NodePool: grouped g.a="x y" g.h.b=2 g.d=1.5s "g.k=v"="q\"uote"` + "\n",
		},
		{
			name: "multi-line message repeats the header",
			msg:  "first\nsecond",
			args: []any{"k", "v"},
			want: "2025-03-01 12:00:05,123 INFO nodepool.NodePool: first k=v\n" +
				"2025-03-01 12:00:05,123 INFO nodepool.NodePool:   second\n",
		},
		{
			name:  "leak sweep",
			build: func(l *slog.Logger) *slog.Logger { return l.With("component", "activities") },
			level: slog.LevelWarn,
			msg:   "deleting leaked resource",
			args:  []any{"provider", "sim", "type", "instance"},
			want:  "2025-03-01 12:00:05,123 WARNING nodepool.CleanupWorker: deleting leaked resource provider=sim type=instance\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, emit(t, FormatText, tc.level, tc.build, tc.msg, tc.args...))
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestJSONFormat(t *testing.T) {
	out := emit(t, FormatJSON, slog.LevelWarn, func(l *slog.Logger) *slog.Logger {
		return l.With("component", "temporal", "WorkflowType", "HandleRequest", "request_id", "200-0000000042")
	}, "launch attempt failed", "node_id", "0000000007", "event_id", "ev-1", "attempt", 2,
		"error", errors.New("boom"), "wait", 2*time.Second, "ids", []string{"a", "b"})
	require.True(t, strings.HasSuffix(out, "}\n"), out)
	require.Equal(t, 1, strings.Count(out, "\n"), out)

	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, map[string]any{
		"time":         stamp.Format(time.RFC3339Nano),
		"level":        "WARNING",
		"logger":       "nodepool.NodeLauncher",
		"event_id":     "ev-1",
		"request_id":   "200-0000000042",
		"node_id":      "0000000007",
		"msg":          "launch attempt failed",
		"component":    "temporal",
		"WorkflowType": "HandleRequest",
		"attempt":      float64(2),
		"error":        "boom",
		"wait":         "2s",
		"ids":          []any{"a", "b"},
	}, got)
	// The facts come first, in a fixed order.
	keys := []string{`"time"`, `"level"`, `"logger"`, `"event_id"`, `"request_id"`, `"node_id"`, `"msg"`, `"component"`}
	last := -1
	for _, k := range keys {
		i := strings.Index(out, k)
		assert.Greater(t, i, last, "%s out of order in %s", k, out)
		last = i
	}
}

func TestLevels(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "warning", "text")
	require.NoError(t, err)
	l.Info("hidden")
	l.Warn("shown")
	l.Log(context.Background(), slog.LevelWarn+2, "between")
	assert.NotContains(t, b.String(), "hidden")
	assert.Contains(t, b.String(), " WARNING nodepool.NodePool: shown\n")
	assert.Contains(t, b.String(), " WARNING+2 nodepool.NodePool: between\n")

	for _, tc := range []struct {
		in   string
		want slog.Level
	}{{"debug", slog.LevelDebug}, {"INFO", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"Warning", slog.LevelWarn}, {"error", slog.LevelError}} {
		got, err := ParseLevel(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	_, err = ParseLevel("loud")
	assert.ErrorContains(t, err, `bad log level "loud"`)
	_, err = New(&b, "info", "xml")
	assert.ErrorContains(t, err, `bad log format "xml"`)
}

// TestTemporalSDKLogger checks the records the Temporal SDK's slog adapter writes:
// its keyvals arrive as attributes, With adds them to the handler.
func TestTemporalSDKLogger(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "info", "text")
	require.NoError(t, err)
	sdk := tlog.NewStructuredLogger(l.With("component", "temporal"))
	wl := tlog.With(sdk, "WorkflowType", "DeleteNode", "WorkflowID", "q/delete/0000000003")
	wl.Info("deleted", "node_id", "0000000003")
	assert.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO nodepool.DeletedNodeWorker: \[node: 0000000003\] deleted `+
		`WorkflowType=DeleteNode WorkflowID=q/delete/0000000003\n$`, b.String())
}

func TestAdapt(t *testing.T) {
	var b bytes.Buffer
	inner := slog.NewJSONHandler(&b, nil)
	l := slog.New(Adapt(inner)).With("component", "activities")
	assert.Same(t, Adapt(l.Handler()), l.Handler(), "adapting twice changes nothing")
	l.Info("fulfilled node request", "request_id", "200-0000000001")
	var got map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &got), b.String())
	assert.Equal(t, NodeRequestHandler, got["logger"])
	assert.Equal(t, "200-0000000001", got["request_id"])

	b.Reset()
	l.With("event_id", ptr("ev-7")).Info("created nodes", "request_id", ptr("200-0000000002"), "tenant", (*string)(nil))
	require.NoError(t, json.Unmarshal(b.Bytes(), &got), b.String())
	assert.Equal(t, "ev-7", got["event_id"])
	assert.Equal(t, "200-0000000002", got["request_id"])
	assert.Equal(t, "", got["tenant"])

	b.Reset()
	Named(l, "nodepool.Mine").Info("x")
	require.NoError(t, json.Unmarshal(b.Bytes(), &got), b.String())
	assert.Equal(t, "nodepool.Mine", got["logger"])
	assert.Equal(t, 1, strings.Count(b.String(), `"logger"`))

	h, err := NewHandler(&b, Options{})
	require.NoError(t, err)
	assert.Same(t, h, Adapt(h), "a handler of this package names records itself")
}

func TestName(t *testing.T) {
	tests := []struct {
		attrs map[string]string
		msg   string
		want  string
	}{
		{map[string]string{"logger": "x", "provider": "p", "pool": "q"}, "", "x"},
		{map[string]string{"WorkflowType": "PoolLedger", "provider": "p", "pool": "q"}, "", "nodepool.PoolWorker.p-q"},
		{map[string]string{"WorkflowType": "PoolLedger"}, "", NodePool},
		{map[string]string{"WorkflowType": "LeakSweep"}, "", CleanupWorker},
		{map[string]string{"WorkflowType": "HandleRequest", "ActivityType": "DeleteStep"}, "", DeletedNodeWorker},
		{map[string]string{"WorkflowType": "Unknown", "provider": "p", "pool": "q"}, "", "nodepool.PoolWorker.p-q"},
		{map[string]string{"component": "temporal"}, "", Temporal},
		{map[string]string{"component": "zookeeper"}, "session established", ZooKeeper},
		{map[string]string{"provider": "sim", "node_id": "1"}, "instance created", "nodepool.StateMachineNodeLauncher.sim"},
		{map[string]string{"provider": "sim", "node_id": "1"}, "instance deleted", "nodepool.StateMachineNodeDeleter.sim"},
		{map[string]string{"provider": "aws"}, "listing instances", "nodepool.StateMachineProvider.aws"},
		{map[string]string{"component": "metrics"}, "", "nodepool.metrics"},
		{map[string]string{"component": "activities", "node_id": "1"}, "node ready", NodeLauncher},
		{map[string]string{"component": "activities", "node_id": "1"}, "removing malformed node znode", DeletedNodeWorker},
		{map[string]string{"component": "activities"}, "took over a lock", NodePool},
		{nil, "launcher running", NodePool},
	}
	for _, tc := range tests {
		got := Name(func(k string) string { return tc.attrs[k] }, tc.msg)
		assert.Equal(t, tc.want, got, "%v %q", tc.attrs, tc.msg)
	}
}
