package prettytable

import (
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		rows    [][]string
		want    string
	}{
		{"empty", []string{"ID", "Provider"}, nil, "+----+----------+\n| ID | Provider |\n+----+----------+\n+----+----------+\n"},
		{"rows", []string{"ID", "Provider"}, [][]string{{"1", "sim"}, {"0000000002", "aws"}},
			"+------------+----------+\n| ID         | Provider |\n+------------+----------+\n| 1          | sim      |\n| 0000000002 | aws      |\n+------------+----------+\n"},
		{"multi-line cell", []string{"A"}, [][]string{{"x\ny\tz"}}, "+-----+\n| A   |\n+-----+\n| x   |\n| y z |\n+-----+\n"},
		{"short row", []string{"A", "B"}, [][]string{{"1"}}, "+---+---+\n| A | B |\n+---+---+\n| 1 |   |\n+---+---+\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := Write(&b, tc.headers, tc.rows); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}
