package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/prettytable"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// table is an ASCII table drawn the way upstream's PrettyTable output looks with
// every column left aligned:
//
//	+----+----------+
//	| ID | Provider |
//	+----+----------+
//	| 1  | sim      |
//	+----+----------+
//
// A cell may span several lines; an empty table still prints its header.
type table struct {
	headers []string
	rows    [][]string
}

// newTable returns an empty table with the given column headers.
func newTable(headers ...string) *table {
	return &table{headers: headers}
}

// add appends a row. Missing cells are empty; extra cells are an error of the
// caller and are dropped.
func (t *table) add(cells ...string) {
	row := make([]string, len(t.headers))
	copy(row, cells)
	t.rows = append(t.rows, row)
}

// String renders the table, ending with a newline.
func (t *table) String() string {
	var b strings.Builder
	t.write(&b)
	return b.String()
}

// write renders the table to w.
func (t *table) write(w io.Writer) {
	_ = prettytable.Write(w, t.headers, t.rows)
}

// formatAge renders an elapsed time as upstream does, DD:HH:MM:SS with whole
// seconds; days grow past two digits when needed. Negative durations (a
// clock ahead of ours) render as zero.
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	total := int64(d / time.Second)
	s := total % 60
	m := total / 60 % 60
	h := total / 3600 % 24
	days := total / 86400
	return fmt.Sprintf("%02d:%02d:%02d:%02d", days, h, m, s)
}

// ageSince renders the age of a unix timestamp (state_time) at now; an unset
// (zero) timestamp renders empty.
func ageSince(unix float64, now time.Time) string {
	if unix <= 0 {
		return ""
	}
	return formatAge(now.Sub(zookeeper.TimeOf(unix)))
}

// strCell renders an optional string; null is empty.
func strCell(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// listCell renders a list comma-joined.
func listCell(items []string) string {
	return strings.Join(items, ",")
}

// rawCell renders arbitrary JSON for a table cell: null and absent are empty,
// a string is shown as is, anything else as compact JSON.
func rawCell(raw json.RawMessage) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return ""
	}
	var s string
	if err := json.Unmarshal(trimmed, &s); err == nil {
		return s
	}
	var b bytes.Buffer
	if err := json.Compact(&b, trimmed); err != nil {
		return string(trimmed)
	}
	return b.String()
}

// portCell renders a connection port: integers as numbers, anything else
// (Kubernetes credentials objects) as "redacted", as upstream does.
func portCell(raw json.RawMessage) string {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return ""
	}
	if i, err := strconv.ParseInt(string(trimmed), 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	return "redacted"
}
