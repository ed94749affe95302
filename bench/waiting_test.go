package main

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestSessionDelta(t *testing.T) {
	tests := []struct {
		name          string
		before, after map[int64]int64
		skip          int64
		want          int64
	}{
		{"growth of every session", map[int64]int64{1: 10, 2: 5}, map[int64]int64{1: 30, 2: 6}, 0, 21},
		{"own session skipped", map[int64]int64{1: 10, 2: 5}, map[int64]int64{1: 30, 2: 6}, 1, 1},
		{"new session counts from zero", map[int64]int64{1: 10}, map[int64]int64{1: 10, 3: 4}, 0, 4},
		{"a reconnected session never counts negative", map[int64]int64{1: 10}, map[int64]int64{1: 2}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, sessionDelta(tc.before, tc.after, tc.skip))
		})
	}
}

func TestRankAmong(t *testing.T) {
	req := func(id string, rel int) *zookeeper.NodeRequest {
		return &zookeeper.NodeRequest{ID: id, RelativePriority: rel}
	}
	others := map[string]*zookeeper.NodeRequest{}
	for _, r := range []*zookeeper.NodeRequest{
		req("100-0000000005", 0), req("100-0000000009", 2), req("200-0000000001", 0), req("300-0000000002", 0),
	} {
		others[r.ID] = r
	}
	tests := []struct {
		name string
		r    *zookeeper.NodeRequest
		want int
	}{
		{"best priority, relative and age", req("100-0000000003", 0), 0},
		{"older but relatively later", req("100-0000000001", 1), 1},
		{"behind every high priority request", req("200-0000000000", 0), 2},
		{"last", req("300-0000000003", 4), 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, rankAmong(tc.r, others))
		})
	}
}

func TestCmpSequence(t *testing.T) {
	assert.Negative(t, cmpSequence("300-0000000001", "100-0000000002"))
	assert.Positive(t, cmpSequence("100-0000000010", "300-0000000002"))
	assert.Zero(t, cmpSequence("100-0000000002", "100-0000000002"))
}
