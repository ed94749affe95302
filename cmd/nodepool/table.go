package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	widths := make([]int, len(t.headers))
	for i, h := range t.headers {
		widths[i] = maxLineWidth(h)
	}
	for _, row := range t.rows {
		for i, cell := range row {
			widths[i] = max(widths[i], maxLineWidth(cell))
		}
	}

	var rule strings.Builder
	rule.WriteString("+")
	for _, wd := range widths {
		rule.WriteString(strings.Repeat("-", wd+2))
		rule.WriteString("+")
	}
	rule.WriteString("\n")

	var b bytes.Buffer
	b.WriteString(rule.String())
	writeRow(&b, t.headers, widths)
	b.WriteString(rule.String())
	for _, row := range t.rows {
		writeRow(&b, row, widths)
	}
	b.WriteString(rule.String())
	_, _ = w.Write(b.Bytes())
}

// writeRow writes one (possibly multi-line) row with every cell left aligned.
func writeRow(b *bytes.Buffer, cells []string, widths []int) {
	lines := make([][]string, len(cells))
	height := 1
	for i, cell := range cells {
		lines[i] = cellLines(cell)
		height = max(height, len(lines[i]))
	}
	for l := range height {
		b.WriteString("|")
		for i, wd := range widths {
			text := ""
			if l < len(lines[i]) {
				text = lines[i][l]
			}
			b.WriteString(" ")
			b.WriteString(text)
			b.WriteString(strings.Repeat(" ", wd-utf8.RuneCountInString(text)))
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
}

// cellLines splits a cell into its lines, dropping carriage returns and
// turning tabs into spaces so that columns stay aligned.
func cellLines(cell string) []string {
	cell = strings.ReplaceAll(cell, "\r", "")
	cell = strings.ReplaceAll(cell, "\t", " ")
	return strings.Split(cell, "\n")
}

// maxLineWidth returns the width in characters of the longest line of s.
func maxLineWidth(s string) int {
	w := 0
	for _, line := range cellLines(s) {
		w = max(w, utf8.RuneCountInString(line))
	}
	return w
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
