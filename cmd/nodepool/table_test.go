package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestTableRendering(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		rows    [][]string
		want    string
	}{
		{
			name:    "empty table prints its header",
			headers: []string{"ID", "Provider"},
			want: "" +
				"+----+----------+\n" +
				"| ID | Provider |\n" +
				"+----+----------+\n" +
				"+----+----------+\n",
		},
		{
			name:    "cells wider than headers, left aligned",
			headers: []string{"ID", "State"},
			rows:    [][]string{{"0000000001", "ready"}, {"2", "in-use"}},
			want: "" +
				"+------------+--------+\n" +
				"| ID         | State  |\n" +
				"+------------+--------+\n" +
				"| 0000000001 | ready  |\n" +
				"| 2          | in-use |\n" +
				"+------------+--------+\n",
		},
		{
			name:    "empty cells and missing cells",
			headers: []string{"A", "B", "C"},
			rows:    [][]string{{"x"}, {"", "yy", ""}},
			want: "" +
				"+---+----+---+\n" +
				"| A | B  | C |\n" +
				"+---+----+---+\n" +
				"| x |    |   |\n" +
				"|   | yy |   |\n" +
				"+---+----+---+\n",
		},
		{
			name:    "multi-line cell grows the row",
			headers: []string{"ID", "Comment"},
			rows:    [][]string{{"1", "first\nsecond line"}},
			want: "" +
				"+----+-------------+\n" +
				"| ID | Comment     |\n" +
				"+----+-------------+\n" +
				"| 1  | first       |\n" +
				"|    | second line |\n" +
				"+----+-------------+\n",
		},
		{
			name:    "width counts characters, not bytes",
			headers: []string{"Name"},
			rows:    [][]string{{"héllo wörld"}},
			want: "" +
				"+-------------+\n" +
				"| Name        |\n" +
				"+-------------+\n" +
				"| héllo wörld |\n" +
				"+-------------+\n",
		},
		{
			name:    "tabs become spaces",
			headers: []string{"X"},
			rows:    [][]string{{"a\tb"}},
			want: "" +
				"+-----+\n" +
				"| X   |\n" +
				"+-----+\n" +
				"| a b |\n" +
				"+-----+\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(tc.headers...)
			for _, r := range tc.rows {
				tb.add(r...)
			}
			assert.Equal(t, tc.want, tb.String())
		})
	}
}

func TestFormatAge(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"zero", 0, "00:00:00:00"},
		{"fractions are cut", 1999 * time.Millisecond, "00:00:00:01"},
		{"minutes and seconds", 5*time.Minute + 7*time.Second, "00:00:05:07"},
		{"hours", 23*time.Hour + 59*time.Minute + 59*time.Second, "00:23:59:59"},
		{"a day", 24 * time.Hour, "01:00:00:00"},
		{"many days", 123*24*time.Hour + 4*time.Hour + 5*time.Minute + 6*time.Second, "123:04:05:06"},
		{"clock skew renders zero", -3 * time.Second, "00:00:00:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, formatAge(tc.in))
		})
	}
}

func TestAgeSince(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		unix float64
		want string
	}{
		{"unset", 0, ""},
		{"ninety seconds ago", 1_700_000_000 - 90.5, "00:00:01:30"},
		{"two days ago", 1_700_000_000 - 2*86400, "02:00:00:00"},
		{"in the future", 1_700_000_010, "00:00:00:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ageSince(tc.unix, now))
		})
	}
}

func TestCells(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"raw null", rawCell(json.RawMessage("null")), ""},
		{"raw absent", rawCell(nil), ""},
		{"raw string", rawCell(json.RawMessage(`"i-0abc"`)), "i-0abc"},
		{"raw object compact", rawCell(json.RawMessage(`{"instance": "i-0abc", "host": "h-1"}`)), `{"instance":"i-0abc","host":"h-1"}`},
		{"raw number", rawCell(json.RawMessage(` 42 `)), "42"},
		{"raw JSON text in a string", rawCell(json.RawMessage(`"{\"owner\": \"x\"}"`)), `{"owner": "x"}`},
		{"port integer", portCell(json.RawMessage("22")), "22"},
		{"port object is redacted", portCell(json.RawMessage(`{"token": "secret"}`)), "redacted"},
		{"port string is redacted", portCell(json.RawMessage(`"22"`)), "redacted"},
		{"port null", portCell(json.RawMessage("null")), ""},
		{"list", listCell([]string{"a", "b", "a"}), "a,b,a"},
		{"empty list", listCell(nil), ""},
		{"null string", strCell(nil), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.got)
		})
	}
}

func TestNodeRow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	str := func(s string) *string { return &s }
	full := &zookeeper.Node{
		ID: "0000000007", State: zookeeper.NodeReady, StateTime: 1_700_000_000 - 3661,
		Type: zookeeper.Labels{"small", "large"}, Provider: "sim-one", Pool: "main",
		Launcher: "host-PoolWorker.sim-one-main-abc", AllocatedTo: str("200-0000000001"),
		AZ: str("sim-a"), PublicIPv4: str("198.51.100.7"), PrivateIPv4: str("10.0.0.7"),
		PublicIPv6: str("2001:db8::7"), Username: str("zuul"),
		ConnectionPort: json.RawMessage(`{"ca": "x"}`),
		ExternalID:     json.RawMessage(`"sim-0001"`), Hostname: nil,
		Comment: str("debugging"), HoldJob: str("t p j r"),
		UserData:   json.RawMessage(`{"zuul_system": "abc", "project_name": "p"}`),
		DriverData: json.RawMessage(`null`),
	}
	tests := []struct {
		name   string
		entry  nodeEntry
		detail bool
		want   []string
	}{
		{
			name:  "default columns",
			entry: nodeEntry{id: full.ID, node: full, locked: true},
			want: []string{"0000000007", "sim-one", "small,large", "sim-0001", "198.51.100.7", "2001:db8::7",
				"ready", "00:01:01:01", "locked"},
		},
		{
			name:   "detail columns",
			entry:  nodeEntry{id: full.ID, node: full},
			detail: true,
			want: []string{"0000000007", "sim-one", "small,large", "sim-0001", "198.51.100.7", "2001:db8::7",
				"ready", "00:01:01:01", "unlocked",
				"main", "", "10.0.0.7", "sim-a", "zuul", "redacted", "host-PoolWorker.sim-one-main-abc",
				"200-0000000001", "t p j r", "debugging", `{"zuul_system":"abc","project_name":"p"}`, ""},
		},
		{
			name:  "malformed record",
			entry: nodeEntry{id: "0000000009", locked: false},
			want:  []string{"0000000009", "", "", "", "", "", "malformed", "", "unlocked"},
		},
		{
			name:   "malformed record with detail",
			entry:  nodeEntry{id: "0000000009", locked: true},
			detail: true,
			want: []string{"0000000009", "", "", "", "", "", "malformed", "", "locked",
				"", "", "", "", "", "", "", "", "", "", "", ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nodeRow(tc.entry, tc.detail, now)
			assert.Equal(t, tc.want, got)
			assert.Len(t, got, len(nodeHeaders(tc.detail)))
		})
	}
}

func TestRequestRow(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name  string
		entry requestEntry
		want  []string
	}{
		{
			name: "fulfilled",
			entry: requestEntry{id: "200-0000000003", req: &zookeeper.NodeRequest{
				ID: "200-0000000003", RelativePriority: 4, State: zookeeper.StateFulfilled,
				Requestor: str("zuul-abc"), NodeTypes: []string{"small", "small"},
				Nodes: []string{"0000000001", "0000000002"}, DeclinedBy: []string{"pool-a"},
				EventID: str("ev1"),
			}},
			want: []string{"200-0000000003", "4", "fulfilled", "zuul-abc", "small,small",
				"0000000001,0000000002", "pool-a", "ev1"},
		},
		{
			name:  "nulls are empty",
			entry: requestEntry{id: "100-0000000001", req: &zookeeper.NodeRequest{ID: "100-0000000001", State: zookeeper.StateRequested}},
			want:  []string{"100-0000000001", "0", "requested", "", "", "", "", ""},
		},
		{
			name:  "malformed",
			entry: requestEntry{id: "100-0000000002"},
			want:  []string{"100-0000000002", "", "malformed", "", "", "", "", ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := requestRow(tc.entry)
			assert.Equal(t, tc.want, got)
			assert.Len(t, got, len(requestColumns))
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantPos []string
		wantNow bool
		wantWhy string
	}{
		{"flag after positional", []string{"0000000001", "--now"}, []string{"0000000001"}, true, ""},
		{"flag before positional", []string{"--now", "0000000001"}, []string{"0000000001"}, true, ""},
		{"value flag between positionals", []string{"a", "--reason", "x y", "b"}, []string{"a", "b"}, false, "x y"},
		{"double dash ends flags", []string{"--", "--now"}, []string{"--now"}, false, ""},
		{"none", nil, nil, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newTestFlagSet()
			now := fs.Bool("now", false, "")
			why := fs.String("reason", "", "")
			pos, err := parseArgs(fs, tc.args)
			assert.NoError(t, err)
			assert.Equal(t, tc.wantPos, pos)
			assert.Equal(t, tc.wantNow, *now)
			assert.Equal(t, tc.wantWhy, *why)
		})
	}
}
