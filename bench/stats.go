package main

import (
	"math"
	"slices"
	"time"
)

// Summary describes a sample of durations, in seconds.
type Summary struct {
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// summarize computes a Summary; percentiles use the nearest-rank method (the smallest
// value with at least p% of the sample at or below it), so every reported value was
// observed.
func summarize(xs []time.Duration) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var total time.Duration
	for _, x := range s {
		total += x
	}
	return Summary{
		N:    len(s),
		Min:  s[0].Seconds(),
		P50:  percentile(s, 50).Seconds(),
		P95:  percentile(s, 95).Seconds(),
		P99:  percentile(s, 99).Seconds(),
		Max:  s[len(s)-1].Seconds(),
		Mean: (total / time.Duration(len(s))).Seconds(),
	}
}

// percentile returns the nearest-rank p-th percentile of a sorted, non-empty sample.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// perNode divides call counts by a node count.
func perNode(calls map[string]int64, nodes int) (map[string]float64, float64) {
	out := map[string]float64{}
	var total float64
	if nodes == 0 {
		return out, 0
	}
	for k, v := range calls {
		if v == 0 {
			continue
		}
		out[k] = float64(v) / float64(nodes)
		total += out[k]
	}
	return out, total
}

// diffCalls returns after minus before, per key.
func diffCalls(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
