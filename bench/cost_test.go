package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCostRow(t *testing.T) {
	burst := ScenarioReport{
		Phases: []PhaseReport{
			{Name: phaseBurstLaunch, Completed: 10, NodesPerSecond: 4,
				Usage:      []ProcUsage{{Name: "temporal-dev", CPUSeconds: 2}, {Name: "launcher", CPUSeconds: 1}, {Name: "zookeeper", CPUSeconds: 9}},
				ZKWrites:   100,
				CloudCalls: map[string]int64{"create": 10, "describe": 20}},
			{Name: phaseBurstReturn, Completed: 10,
				Usage:      []ProcUsage{{Name: "temporal-dev", CPUSeconds: 1}, {Name: "launcher", CPUSeconds: 0.5}},
				ZKWrites:   50,
				CloudCalls: map[string]int64{"delete": 10}},
		},
		Workflows: &WorkflowCosts{Request: &HistorySummary{Events: 40}, Delete: &HistorySummary{Events: 20}, LedgerEvents: 150},
	}
	tests := []struct {
		name         string
		sc           ScenarioReport
		ledgerBefore int64
		want         CostRow
	}{
		{"launch and return summed per node", burst, 100, CostRow{
			Size: 10, Nodes: 10, NodesPerSecond: 4, ServerCPUms: 300, LauncherCPUms: 150,
			RequestEvents: 40, DeleteEvents: 20, LedgerEvents: 5, HistoryEvents: 65, ZKWrites: 15, CloudCalls: 4,
		}},
		{"ledger continued as new", burst, 400, CostRow{
			Size: 10, Nodes: 10, NodesPerSecond: 4, ServerCPUms: 300, LauncherCPUms: 150,
			RequestEvents: 40, DeleteEvents: 20, HistoryEvents: 60, ZKWrites: 15, CloudCalls: 4,
		}},
		{"nothing launched", ScenarioReport{}, 0, CostRow{Size: 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, costRow(10, tc.sc, tc.ledgerBefore))
		})
	}
}

func TestParseZxid(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    int64
		wantErr bool
	}{
		{"srvr", "Zookeeper version: 3.9.3\nLatency min/avg/max: 0/0.4/12\nReceived: 1234\nSent: 1233\nConnections: 3\nOutstanding: 0\nZxid: 0x10000002c\nMode: standalone\nNode count: 42\n", 0x10000002c, false},
		{"missing", "Mode: standalone\n", 0, true},
		{"garbage", "Zxid: 0xnothex\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseZxid(tc.out)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestIntsString(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{[]int{1}, "1"},
		{[]int{1, 10}, "1 and 10"},
		{[]int{1, 10, 100, 1000}, "1, 10, 100 and 1000"},
	} {
		assert.Equal(t, tc.want, intsString(tc.in))
	}
}
