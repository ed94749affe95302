package webapp

import (
	"strings"
	"unicode/utf8"
)

// writeTable renders rows under headers as upstream's PrettyTable does with every
// column left aligned:
//
//	+----+----------+
//	| ID | Provider |
//	+----+----------+
//	| 1  | sim      |
//	+----+----------+
//
// A cell may span several lines; a table without rows still prints its header.
func writeTable(b *strings.Builder, headers []string, rows [][]string) {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = maxLineWidth(h)
	}
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], maxLineWidth(cell))
		}
	}
	var rule strings.Builder
	rule.WriteString("+")
	for _, w := range widths {
		rule.WriteString(strings.Repeat("-", w+2))
		rule.WriteString("+")
	}
	rule.WriteString("\n")

	b.WriteString(rule.String())
	writeRow(b, headers, widths)
	b.WriteString(rule.String())
	for _, row := range rows {
		writeRow(b, row, widths)
	}
	b.WriteString(rule.String())
}

// writeRow writes one (possibly multi-line) row with every cell left aligned.
func writeRow(b *strings.Builder, cells []string, widths []int) {
	lines := make([][]string, len(cells))
	height := 1
	for i, cell := range cells {
		lines[i] = cellLines(cell)
		height = max(height, len(lines[i]))
	}
	for l := range height {
		b.WriteString("|")
		for i, w := range widths {
			text := ""
			if l < len(lines[i]) {
				text = lines[i][l]
			}
			b.WriteString(" ")
			b.WriteString(text)
			b.WriteString(strings.Repeat(" ", w-utf8.RuneCountInString(text)))
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
