package main

import (
	"context"
	"fmt"
	"math"
)

const costScenario = "cost"

// CostRow is what one node cost in a burst of Size single-node requests, launch and
// return together.
type CostRow struct {
	Size int `json:"size"`
	// Nodes is the number of nodes launched and deleted.
	Nodes int `json:"nodes"`
	// ServerCPUms is the Temporal server's CPU per node (its database's included),
	// LauncherCPUms the launcher's.
	ServerCPUms   float64 `json:"server_cpu_ms_per_node"`
	LauncherCPUms float64 `json:"launcher_cpu_ms_per_node"`
	// HistoryEvents is the events of the median request's workflow, of its node's
	// deletion workflow and the ledger's events per node.
	RequestEvents int64   `json:"request_workflow_events"`
	DeleteEvents  int64   `json:"delete_workflow_events"`
	LedgerEvents  float64 `json:"ledger_events_per_node"`
	HistoryEvents float64 `json:"history_events_per_node"`
	// ZKWrites is ZooKeeper transactions per node, from every client (Zuul's included).
	ZKWrites float64 `json:"zookeeper_writes_per_node"`
	// CloudCalls is cloud API calls per node.
	CloudCalls float64 `json:"cloud_calls_per_node"`
	// NodesPerSecond is the launch phase's throughput.
	NodesPerSecond float64 `json:"nodes_per_second"`
	Error          string  `json:"error,omitempty"`
}

// runCost runs bursts of each size one after another on one stack and reports what a
// node cost in each.
func runCost(ctx context.Context, st *stack, mon *monitor, sizes []int, o scenarioOptions, rep *ScenarioReport) error {
	var ledgerBefore int64
	for _, n := range sizes {
		o.Logger.Info("cost: burst", "size", n)
		sub := ScenarioReport{Name: fmt.Sprintf("cost %d", n), BootSeconds: rep.BootSeconds}
		so := o
		so.Requests, so.Floor = n, false
		err := runBurst(ctx, st, mon, so, &sub)
		rep.Launched += sub.Launched
		row := costRow(n, sub, ledgerBefore)
		if sub.Workflows != nil {
			ledgerBefore = sub.Workflows.LedgerEvents
		}
		if err != nil {
			row.Error = err.Error()
		}
		rep.Costs = append(rep.Costs, row)
		for _, ph := range sub.Phases {
			ph.Name = fmt.Sprintf("%s (%d)", ph.Name, n)
			rep.Phases = append(rep.Phases, ph)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// costRow sums a burst's launch and return phases per node. ledgerBefore is the ledger's
// history length before the burst (its run may have continued as new meanwhile, then the
// figure is left out).
func costRow(size int, sc ScenarioReport, ledgerBefore int64) CostRow {
	row := CostRow{Size: size}
	var serverCPU, launcherCPU float64
	var zkWrites int64
	var calls float64
	for _, ph := range sc.Phases {
		switch ph.Name {
		case phaseBurstLaunch:
			row.Nodes = ph.Completed
			row.NodesPerSecond = ph.NodesPerSecond
		case phaseBurstReturn:
		default:
			continue
		}
		for _, u := range ph.Usage {
			switch u.Name {
			case "temporal-dev", "temporal-server", "postgres":
				serverCPU += u.CPUSeconds
			case "launcher":
				launcherCPU += u.CPUSeconds
			}
		}
		zkWrites += ph.ZKWrites
		for _, c := range ph.CloudCalls {
			calls += float64(c)
		}
	}
	if row.Nodes == 0 {
		return row
	}
	n := float64(row.Nodes)
	row.ServerCPUms = serverCPU * 1000 / n
	row.LauncherCPUms = launcherCPU * 1000 / n
	row.ZKWrites = float64(zkWrites) / n
	row.CloudCalls = calls / n
	if wc := sc.Workflows; wc != nil {
		if wc.Request != nil {
			row.RequestEvents = int64(wc.Request.Events)
		}
		if wc.Delete != nil {
			row.DeleteEvents = int64(math.Round(float64(wc.Delete.Events) / float64(max(wc.Delete.Nodes, 1))))
		}
		if wc.LedgerEvents >= ledgerBefore {
			row.LedgerEvents = float64(wc.LedgerEvents-ledgerBefore) / n
		}
	}
	row.HistoryEvents = float64(row.RequestEvents+row.DeleteEvents) + row.LedgerEvents
	return row
}
