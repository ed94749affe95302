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
			[]string{`--driver: want sim, aws, openstack or static, got "gce"`, "--workers must be at least 1", "--poll-interval must be positive"}},
		{"openstack", []string{"--driver", "openstack", "--quick"}, func(t *testing.T, o options) {
			assert.Equal(t, driverOpenStack, o.Driver)
			assert.Equal(t, []string{latencyScenario, burstScenario}, o.Scenarios)
		}, nil},
		{"static", []string{"--driver", "static", "--static-hosts", "12"}, func(t *testing.T, o options) {
			assert.Equal(t, driverStatic, o.Driver)
			assert.Equal(t, 12, o.StaticHosts)
		}, nil},
		{"static with two workers", []string{"--driver", "static", "--workers", "2"}, nil,
			[]string{"--driver static runs one launcher process"}},
		{"bad static hosts", []string{"--driver", "static", "--static-hosts", "-1"}, nil,
			[]string{"--static-hosts must not be negative"}},
		{"reuse", []string{"--scenarios", "reuse", "--requests", "10"}, func(t *testing.T, o options) {
			assert.Equal(t, []string{reuseScenario}, o.Scenarios)
			assert.Equal(t, 10, o.Requests)
			assert.Equal(t, 5, o.MinReady)
		}, nil},
		{"reuse min-ready", []string{"--scenarios", "latency,reuse", "--min-ready", "2"}, func(t *testing.T, o options) {
			assert.Equal(t, []string{latencyScenario, reuseScenario}, o.Scenarios)
			assert.Equal(t, 2, o.MinReady)
		}, nil},
		{"bad min-ready", []string{"--scenarios", "reuse", "--min-ready", "0"}, nil, []string{"--min-ready must be at least 1"}},
		{"reuse on the cluster", []string{"--scenarios", "reuse", "--cluster"}, nil, []string{"the reuse scenario does not run with --cluster"}},
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
		{Name: reuseScenario, Driver: driverStatic, Phases: []PhaseReport{{Name: phaseReuse, Launch: &Summary{P50: 0.2}}},
			Reuse: &ReuseReport{Requests: 10, Fulfilled: 10, FromReady: 9, FromReadyShare: 0.9, ReadyLaunch: &Summary{P95: 0.4}}},
	}}
	got := evaluate(r)
	require.Len(t, got, 7)
	met := map[string]bool{}
	for _, tg := range got {
		met[tg.Name] = tg.Met
	}
	assert.Equal(t, map[string]bool{
		"single-request overhead above boot, p50":  true,
		"used-to-deleted of a single node, p50":    true,
		"burst throughput (200 requests)":          false,
		"EC2 API calls per launched node":          true,
		"used-to-deleted after the burst, p50":     false,
		"request fulfilled from a ready node, p95": true,
		"requests served from a ready node":        false,
	}, met)
}
