package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func ms(xs ...int) []time.Duration {
	out := make([]time.Duration, len(xs))
	for i, x := range xs {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestSummarize(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1 ms, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", ms(250), Summary{N: 1, Min: 0.25, P50: 0.25, P95: 0.25, P99: 0.25, Max: 0.25, Mean: 0.25}},
		{"four unsorted", ms(400, 100, 300, 200), Summary{N: 4, Min: 0.1, P50: 0.2, P95: 0.4, P99: 0.4, Max: 0.4, Mean: 0.25}},
		{"hundred", ms(hundred...), Summary{N: 100, Min: 0.001, P50: 0.05, P95: 0.095, P99: 0.099, Max: 0.1, Mean: 0.0505}},
		{"twenty", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 1000),
			Summary{N: 20, Min: 0.001, P50: 0.010, P95: 0.019, P99: 1, Max: 1, Mean: 0.0595}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := summarize(tc.in)
			assert.Equal(t, tc.want.N, got.N)
			for _, f := range []struct {
				name      string
				want, got float64
			}{
				{"min", tc.want.Min, got.Min}, {"p50", tc.want.P50, got.P50}, {"p95", tc.want.P95, got.P95},
				{"p99", tc.want.P99, got.P99}, {"max", tc.want.Max, got.Max}, {"mean", tc.want.Mean, got.Mean},
			} {
				assert.InDelta(t, f.want, f.got, 1e-9, f.name)
			}
		})
	}
}

func TestSummarizeKeepsInput(t *testing.T) {
	in := ms(3, 1, 2)
	summarize(in)
	assert.Equal(t, ms(3, 1, 2), in)
}

func TestCallsPerNode(t *testing.T) {
	tests := []struct {
		name          string
		before, after map[string]int64
		nodes         int
		want          map[string]float64
		total         float64
	}{
		{"deltas", map[string]int64{"create": 10, "describe": 5}, map[string]int64{"create": 30, "describe": 45, "list": 2}, 20,
			map[string]float64{"create": 1, "describe": 2, "list": 0.1}, 3.1},
		{"unchanged key dropped", map[string]int64{"limits": 3}, map[string]int64{"limits": 3, "create": 4}, 4,
			map[string]float64{"create": 1}, 1},
		{"no nodes", nil, map[string]int64{"create": 4}, 0, map[string]float64{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, total := perNode(diffCalls(tc.before, tc.after), tc.nodes)
			assert.InDeltaMapValues(t, tc.want, got, 1e-9)
			assert.Len(t, got, len(tc.want))
			assert.InDelta(t, tc.total, total, 1e-9)
		})
	}
}
