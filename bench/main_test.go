package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o options)
		wantErr []string
	}{
		{"defaults", nil, func(t *testing.T, o options) {
			assert.Equal(t, 20, o.Requests)
			assert.Equal(t, 200, o.Burst)
			assert.Equal(t, 200, o.MaxServers)
			assert.Equal(t, []float64{0.5, 1.5}, o.BootSteps)
			assert.Equal(t, []string{latencyScenario, burstScenario}, o.Scenarios)
			assert.Equal(t, driverSim, o.Driver)
			assert.Equal(t, 4, o.Shards)
		}, nil},
		{"quick", []string{"--quick"}, func(t *testing.T, o options) {
			assert.Equal(t, quickRequests, o.Requests)
			assert.Equal(t, quickBurst, o.Burst)
			assert.Equal(t, 200, o.MaxServers)
		}, nil},
		{"quick keeps explicit sizes", []string{"--quick", "--burst", "300", "--requests", "7"}, func(t *testing.T, o options) {
			assert.Equal(t, 7, o.Requests)
			assert.Equal(t, 300, o.Burst)
			assert.Equal(t, 300, o.MaxServers)
		}, nil},
		{"aws burst only", []string{"--driver", "aws", "--scenarios", "burst", "--boot-steps", ""}, func(t *testing.T, o options) {
			assert.Equal(t, driverAWS, o.Driver)
			assert.Equal(t, []string{burstScenario}, o.Scenarios)
			assert.Empty(t, o.BootSteps)
		}, nil},
		{"bad values", []string{"--driver", "gce", "--workers", "0", "--poll-interval", "0"}, nil,
			[]string{`--driver: want sim or aws, got "gce"`, "--workers must be at least 1", "--poll-interval must be positive"}},
		{"bad scenario", []string{"--scenarios", "latency,soak"}, nil, []string{`unknown scenario "soak"`}},
		{"waiting alone", []string{"--waiting", "1000"}, func(t *testing.T, o options) {
			assert.Equal(t, []string{waitingScenario}, o.Scenarios)
			assert.Equal(t, 1000, o.Waiting)
			assert.Equal(t, 2, o.WaitingCapacity)
			assert.Equal(t, 20, o.WaitingServe)
		}, nil},
		{"waiting with others", []string{"--waiting", "50", "--scenarios", "burst,waiting"}, func(t *testing.T, o options) {
			assert.Equal(t, []string{burstScenario, waitingScenario}, o.Scenarios)
		}, nil},
		{"cost alone", []string{"--cost", "1, 10,100"}, func(t *testing.T, o options) {
			assert.Equal(t, []string{costScenario}, o.Scenarios)
			assert.Equal(t, []int{1, 10, 100}, o.CostSizes)
			assert.True(t, o.Floor)
		}, nil},
		{"waiting and cost", []string{"--cost", "1", "--waiting", "5", "--floor=false"}, func(t *testing.T, o options) {
			assert.Equal(t, []string{waitingScenario, costScenario}, o.Scenarios)
			assert.False(t, o.Floor)
		}, nil},
		{"bad cost sizes", []string{"--cost", "1,0"}, nil, []string{"parsing --cost: size 0 is below 1"}},
		{"cost scenario without sizes", []string{"--scenarios", "cost"}, nil, []string{"the cost scenario needs --cost"}},
		{"waiting scenario without a size", []string{"--scenarios", "waiting"}, nil, []string{"the waiting scenario needs --waiting"}},
		{"bad waiting values", []string{"--waiting", "10", "--waiting-max-servers", "0", "--waiting-window", "0s"}, nil,
			[]string{"--waiting-max-servers must be at least 1", "--waiting-window must be positive"}},
		{"bad boot steps", []string{"--boot-steps", "1,-2"}, nil, []string{"parsing --boot-steps"}},
		{"extra argument", []string{"run"}, nil, []string{"unexpected arguments"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != nil {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			tc.check(t, o)
		})
	}
}

func TestEvaluate(t *testing.T) {
	r := &Report{Scenarios: []ScenarioReport{
		{Name: latencyScenario, Driver: driverSim, Phases: []PhaseReport{
			{Name: phaseLatencyCycle, Overhead: &Summary{P50: 0.25}, Return: &Summary{P50: 0.4}},
		}},
		{Name: burstScenario, Driver: driverAWS, Phases: []PhaseReport{
			{Name: phaseBurstLaunch, Requests: 200, Launch: &Summary{P50: 5}, NodesPerSecond: 18, CallsPerNodeTotal: 2.5},
			{Name: phaseBurstReturn, Return: &Summary{P50: 1.2}},
		}},
	}}
	got := evaluate(r)
	require.Len(t, got, 5)
	met := map[string]bool{}
	for _, tg := range got {
		met[tg.Name] = tg.Met
	}
	assert.Equal(t, map[string]bool{
		"single-request overhead above boot, p50": true,
		"used-to-deleted of a single node, p50":   true,
		"burst throughput (200 requests)":         false,
		"EC2 API calls per launched node":         true,
		"used-to-deleted after the burst, p50":    false,
	}, met)
}
