// Package prettytable draws text tables the way upstream Nodepool's command-line tool
// and web app do (Python's PrettyTable with every column left aligned), for the admin
// CLI and the web app alike.
package prettytable

import (
	"io"
	"strings"
	"unicode/utf8"
)

// Write renders rows under headers:
//
//	+----+----------+
//	| ID | Provider |
//	+----+----------+
//	| 1  | sim      |
//	+----+----------+
//
// A cell may span several lines; a table without rows still prints its header. The
// output ends with a newline.
func Write(w io.Writer, headers []string, rows [][]string) error {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = maxLineWidth(h)
	}
	for _, row := range rows {
		for i, cell := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], maxLineWidth(cell))
			}
		}
	}
	var rule strings.Builder
	rule.WriteString("+")
	for _, wd := range widths {
		rule.WriteString(strings.Repeat("-", wd+2))
		rule.WriteString("+")
	}
	rule.WriteString("\n")

	var b strings.Builder
	b.WriteString(rule.String())
	writeRow(&b, headers, widths)
	b.WriteString(rule.String())
	for _, row := range rows {
		writeRow(&b, row, widths)
	}
	b.WriteString(rule.String())
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRow writes one (possibly multi-line) row with every cell left aligned.
func writeRow(b *strings.Builder, cells []string, widths []int) {
	lines := make([][]string, len(widths))
	height := 1
	for i := range widths {
		if i < len(cells) {
			lines[i] = cellLines(cells[i])
		}
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

// cellLines splits a cell into its lines, dropping carriage returns and turning tabs
// into spaces so that columns stay aligned.
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
