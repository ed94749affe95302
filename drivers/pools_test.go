package drivers

import (
	"fmt"
	"slices"
	"testing"
)

func TestCheckPoolSpecs(t *testing.T) {
	tests := []struct {
		name       string
		pools      []PoolSpec
		configured int
		want       []string
	}{
		{"good", []PoolSpec{{"main", []string{"a", "b"}}, {"other", []string{"a"}}}, 2, nil},
		{"no pools", nil, 0, []string{"pools: at least one pool is required"}},
		{"count differs", []PoolSpec{{"main", nil}}, 2, []string{"pools: 2 pools decoded but 1 named"}},
		{"unnamed and duplicate pools", []PoolSpec{{"", nil}, {"x", nil}, {"x", nil}}, 3,
			[]string{"pools[0].name: required", `pools[2].name: duplicate pool "x"`}},
		{"missing and duplicate labels", []PoolSpec{{"main", []string{"a", "", "a"}}}, 1,
			[]string{`pools[0].labels[1].name: missing or duplicate label name ""`,
				`pools[0].labels[2].name: missing or duplicate label name "a"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			CheckPoolSpecs(tt.pools, tt.configured, func(path, format string, args ...any) {
				got = append(got, path+": "+fmt.Sprintf(format, args...))
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
