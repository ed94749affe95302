package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the benchmark's result.
type Report struct {
	Started   time.Time        `json:"started"`
	Machine   Machine          `json:"machine"`
	Settings  Settings         `json:"settings"`
	Scenarios []ScenarioReport `json:"scenarios"`
	Targets   []Target         `json:"targets"`
	// LogDir holds the components' logs when they were kept.
	LogDir string `json:"log_dir,omitempty"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	Cores        int        `json:"cores"`
	CPUModel     string     `json:"cpu_model"`
	MemoryGiB    float64    `json:"memory_gib"`
	Kernel       string     `json:"kernel"`
	GoVersion    string     `json:"go_version"`
	LoadAvgStart [3]float64 `json:"load_avg_start"`
	LoadAvgEnd   [3]float64 `json:"load_avg_end"`
}

// Settings are the benchmark's parameters.
type Settings struct {
	Driver         string    `json:"driver"`
	Scenarios      []string  `json:"scenarios"`
	Workers        int       `json:"launcher_processes"`
	Shards         int       `json:"temporal_history_shards"`
	Requests       int       `json:"latency_requests"`
	Burst          int       `json:"burst_requests"`
	BootSteps      []float64 `json:"latency_boot_steps"`
	BurstBoot      float64   `json:"burst_boot_seconds"`
	DeleteLatency  float64   `json:"delete_latency_seconds"`
	PollInterval   float64   `json:"poll_interval_seconds"`
	DeleteInterval float64   `json:"delete_interval_seconds"`
	Rate           float64   `json:"provider_rate"`
	MaxServers     int       `json:"burst_max_servers"`
	// Waiting, WaitingCapacity, WaitingWindow and WaitingServe are the waiting
	// scenario's requests, pool max-servers, idle window and requests served in order.
	Waiting         int           `json:"waiting_requests,omitempty"`
	WaitingCapacity int           `json:"waiting_max_servers,omitempty"`
	WaitingWindow   time.Duration `json:"waiting_window_ns,omitempty"`
	WaitingServe    int           `json:"waiting_serve,omitempty"`
	// Floor is whether the burst is followed by the engine floor; CostSizes are the
	// cost scenario's burst sizes.
	Floor bool `json:"engine_floor"`
	// Cluster is whether the scenarios ran on the production topology.
	Cluster bool `json:"cluster"`
	// NoWebapp is whether the launchers ran without the web app (and its stats).
	NoWebapp  bool  `json:"no_webapp"`
	CostSizes []int `json:"cost_sizes,omitempty"`
	Quick     bool  `json:"quick"`
	// TemporalConfig are dynamic config values given to temporal-dev.
	TemporalConfig []string `json:"temporal_dynamic_config,omitempty"`
	// MinReady is the reuse scenario's min-ready; StaticHosts the static driver's
	// hosts as given (0: each scenario's max-servers).
	MinReady    int `json:"min_ready,omitempty"`
	StaticHosts int `json:"static_hosts,omitempty"`
}

// Target is one of the goals the figures are checked against.
type Target struct {
	Name string `json:"name"`
	// Goal is the goal in words, e.g. "< 0.3 s".
	Goal  string  `json:"goal"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Met   bool    `json:"met"`
}

// Goals.
const (
	goalOverheadP50   = 0.3
	goalNodesPerSec   = 20
	goalDeleteP50     = 1.0
	goalCallsPerNode  = 3
	latencyScenario   = "latency"
	burstScenario     = "burst"
	phaseBurstLaunch  = "burst launch"
	phaseBurstReturn  = "burst return"
	phaseLatencyCycle = "sequential launch and return"
)

// evaluate checks the figures against the goals; a goal whose figure was not measured
// is left out.
func evaluate(r *Report) []Target {
	var out []Target
	for _, sc := range r.Scenarios {
		if sc.Error != "" {
			// The figures of a scenario that stopped early are partial.
			continue
		}
		for _, ph := range sc.Phases {
			switch {
			case sc.Name == latencyScenario && ph.Name == phaseLatencyCycle && ph.Overhead != nil:
				out = append(out, Target{Name: "single-request overhead above boot, p50", Goal: "< 0.3 s",
					Value: ph.Overhead.P50, Unit: "s", Met: ph.Overhead.P50 < goalOverheadP50 && ph.Failed == 0})
				if ph.Return != nil {
					out = append(out, Target{Name: "used-to-deleted of a single node, p50", Goal: "< 1 s",
						Value: ph.Return.P50, Unit: "s", Met: ph.Return.P50 < goalDeleteP50 && ph.Failed == 0})
				}
			case sc.Name == burstScenario && ph.Name == phaseBurstLaunch && ph.Launch != nil:
				out = append(out, Target{Name: fmt.Sprintf("burst throughput (%d requests)", ph.Requests), Goal: ">= 20 nodes/s",
					Value: ph.NodesPerSecond, Unit: "nodes/s", Met: ph.NodesPerSecond >= goalNodesPerSec && ph.Failed == 0})
				if sc.Driver == driverAWS {
					out = append(out, Target{Name: "EC2 API calls per launched node", Goal: "<= 3",
						Value: ph.CallsPerNodeTotal, Unit: "calls", Met: ph.CallsPerNodeTotal <= goalCallsPerNode})
				}
			case sc.Name == reuseScenario && ph.Name == phaseReuse && sc.Reuse != nil && sc.Reuse.ReadyLaunch != nil:
				out = append(out, Target{Name: "request fulfilled from a ready node, p95", Goal: "< 1 s",
					Value: sc.Reuse.ReadyLaunch.P95, Unit: "s", Met: sc.Reuse.ReadyLaunch.P95 < goalReuseP95 && ph.Failed == 0})
				out = append(out, Target{Name: "requests served from a ready node", Goal: "all",
					Value: 100 * sc.Reuse.FromReadyShare, Unit: "%", Met: sc.Reuse.FromReady == sc.Reuse.Requests})
			case sc.Name == burstScenario && ph.Name == phaseBurstReturn && ph.Return != nil:
				out = append(out, Target{Name: "used-to-deleted after the burst, p50", Goal: "< 1 s",
					Value: ph.Return.P50, Unit: "s", Met: ph.Return.P50 < goalDeleteP50 && ph.Failed == 0})
			}
		}
	}
	return out
}

// machineInfo describes this machine.
func machineInfo() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvgStart: readLoadAvg()}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					if kib, err := strconv.ParseFloat(f[0], 64); err == nil {
						m.MemoryGiB = kib / (1 << 20)
					}
				}
			}
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// writeText renders the report for people; timeline adds the sample workflows'
// milestones.
func writeText(w io.Writer, r *Report, timeline bool) {
	m := r.Machine
	s := r.Settings
	fmt.Fprintf(w, "npbench: nodepool-temporal end to end (%s)\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "machine      %d cores (%s), %.1f GiB, Linux %s, %s\n", m.Cores, m.CPUModel, m.MemoryGiB, m.Kernel, m.GoVersion)
	fmt.Fprintf(w, "load average %s at start, %s at end\n", loadString(m.LoadAvgStart), loadString(m.LoadAvgEnd))
	server := "temporal-dev in memory"
	if s.Cluster {
		server = "Temporal on PostgreSQL"
	}
	fmt.Fprintf(w, "setup        driver %s, %d launcher process(es), %s with %d history shard(s), poll-interval %gs, delete-interval %gs, rate %s\n",
		s.Driver, s.Workers, server, s.Shards, s.PollInterval, s.DeleteInterval, rateString(s.Rate))
	if s.Cluster {
		fmt.Fprintf(w, "topology     cluster: PostgreSQL, the four Temporal services, a 3-member ZooKeeper ensemble, one poller and %d worker process(es)\n", s.Workers)
	}
	if s.NoWebapp {
		fmt.Fprintf(w, "launcher     --no-webapp: no web app, Prometheus metrics or stats collector\n")
	}
	if len(s.TemporalConfig) > 0 {
		fmt.Fprintf(w, "temporal-dev dynamic config %s\n", strings.Join(s.TemporalConfig, " "))
	}
	for _, sc := range r.Scenarios {
		fmt.Fprintf(w, "\n== %s: %s\n", sc.Name, sc.Description)
		if sc.NoCloudAPI {
			fmt.Fprintf(w, "   static hosts: %d on loopback from 127.0.0.2, one slot each, host-key-checking off (%d connections to them); no cloud, max-servers %d\n",
				sc.StaticHosts, sc.StaticConnections, sc.MaxServers)
		} else {
			fmt.Fprintf(w, "   cloud: boot steps %s (%.2f s), delete %.2f s, max-servers %d\n",
				floats(sc.BootSteps), sc.BootSeconds, sc.DeleteLatency, sc.MaxServers)
		}
		if sc.MinReady > 0 {
			fmt.Fprintf(w, "   label %s: min-ready %d\n", benchLabel, sc.MinReady)
		}
		if sc.Error != "" {
			fmt.Fprintf(w, "   STOPPED EARLY: %s\n", sc.Error)
		}
		for _, ph := range sc.Phases {
			writePhase(w, ph, sc.NoCloudAPI)
		}
		if sc.NoCloudAPI {
			fmt.Fprintf(w, "\n-- whole scenario: %d nodes launched and deleted (warm-up included); no cloud API calls: the static driver calls none\n", sc.Launched)
		} else if len(sc.CallsPerNode) > 0 {
			fmt.Fprintf(w, "\n-- whole scenario: %d nodes launched and deleted (warm-up included); cloud API calls per node, start-up and one-time lookups included: %s (total %.2f)\n",
				sc.Launched, callsString(sc.CallsPerNode), sc.CallsPerNodeTotal)
		}
		if wc := sc.Workflows; wc != nil {
			writeWorkflows(w, wc, timeline)
		}
		if wr := sc.Waiting; wr != nil {
			writeWaiting(w, wr)
		}
		if rr := sc.Reuse; rr != nil {
			writeReuse(w, rr)
		}
		if sc.Floor != nil {
			writeFloor(w, sc.Floor)
		}
		if len(sc.Costs) > 0 {
			writeCosts(w, sc.Costs)
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintf(w, "\n== targets\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range r.Targets {
			mark := "MISSED"
			if t.Met {
				mark = "met"
			}
			fmt.Fprintf(tw, "   [%s]\t%s\t%s\t%.2f %s\n", mark, t.Name, t.Goal, t.Value, t.Unit)
		}
		tw.Flush()
	}
	if r.LogDir != "" {
		fmt.Fprintf(w, "\nlogs and configuration: %s\n", r.LogDir)
	}
}

func writePhase(w io.Writer, ph PhaseReport, noCloudAPI bool) {
	fmt.Fprintf(w, "\n-- %s: %d request(s), %d completed, %d failed, %.1f s\n", ph.Name, ph.Requests, ph.Completed, ph.Failed, ph.WallSeconds)
	for _, e := range ph.Errors {
		fmt.Fprintf(w, "   error: %s\n", firstLine(e))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if ph.Launch != nil || ph.Overhead != nil || ph.Return != nil {
		fmt.Fprintf(tw, "   seconds\tp50\tp95\tp99\tmin\tmax\tmean\t\n")
		row := func(name string, s *Summary) {
			if s != nil {
				fmt.Fprintf(tw, "   %s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, s.P50, s.P95, s.P99, s.Min, s.Max, s.Mean)
			}
		}
		row("submit to fulfilled", ph.Launch)
		row("overhead above boot", ph.Overhead)
		row("used to deleted", ph.Return)
		tw.Flush()
	}
	if ph.NodesPerSecond > 0 {
		fmt.Fprintf(w, "   throughput: %.1f nodes/s\n", ph.NodesPerSecond)
	}
	if noCloudAPI {
		fmt.Fprintf(w, "   cloud API calls per node: none (the static driver calls no cloud API)\n")
	} else if len(ph.CallsPerNode) > 0 {
		fmt.Fprintf(w, "   cloud API calls per node: %s (total %.2f)\n", callsString(ph.CallsPerNode), ph.CallsPerNodeTotal)
	} else {
		fmt.Fprintf(w, "   cloud API calls per node: none recorded\n")
	}
	if ph.ZKWrites > 0 {
		fmt.Fprintf(w, "   ZooKeeper writes: %d (%.1f per node)\n", ph.ZKWrites, ph.ZKWritesPerNode)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "   component\tCPU s\tCPU %%\tCPU ms/node\tpeak RSS MiB\tVmHWM MiB\t\n")
	for _, u := range ph.Usage {
		perNode := "-"
		if ph.Completed > 0 {
			perNode = fmt.Sprintf("%.0f", 1000*u.CPUSeconds/float64(ph.Completed))
		}
		name := u.Name
		if u.Processes > 1 {
			name = fmt.Sprintf("%s (x%d)", u.Name, u.Processes)
		}
		fmt.Fprintf(tw, "   %s\t%.2f\t%.0f\t%s\t%.0f\t%.0f\t\n", name, u.CPUSeconds, u.CPUPercent, perNode, u.PeakRSSMiB, u.HWMMiB)
	}
	tw.Flush()
	fmt.Fprintf(w, "   machine: %.0f%% busy (of %d00%%), other processes %.0f%%, load average %s\n",
		ph.Machine.BusyPercent, runtime.NumCPU(), ph.Machine.OtherPercent, loadString(ph.Machine.LoadAvg))
}

func writeWorkflows(w io.Writer, wc *WorkflowCosts, timeline bool) {
	fmt.Fprintf(w, "\n-- workflow costs (one sample)\n")
	for _, h := range []*HistorySummary{wc.Request, wc.Delete} {
		if h == nil {
			continue
		}
		var acts []string
		for _, k := range slices.Sorted(maps.Keys(h.Activities)) {
			acts = append(acts, fmt.Sprintf("%s %d", k, h.Activities[k]))
		}
		fmt.Fprintf(w, "   %s: %d events, %d workflow tasks, %d activities (%s), %d timers, %d signals sent, %d received, %d search attribute upserts\n",
			h.WorkflowID, h.Events, h.WorkflowTasks, h.ActivityTotal, strings.Join(acts, ", "), h.Timers, h.SignalsSent, h.SignalsReceived, h.Upserts)
		if h.Nodes > 1 {
			fmt.Fprintf(w, "      a batch of %d nodes: %.1f events per node\n", h.Nodes, float64(h.Events)/float64(h.Nodes))
		}
		if timeline {
			for _, e := range h.Timeline {
				fmt.Fprintf(w, "      %7.3f s  %s\n", e.At, e.Event)
			}
		}
	}
	if wc.LedgerEvents > 0 {
		fmt.Fprintf(w, "   pool ledger: %d events in its current run\n", wc.LedgerEvents)
	}
	if wc.Error != "" {
		fmt.Fprintf(w, "   (incomplete: %s)\n", wc.Error)
	}
}

func callsString(perNode map[string]float64) string {
	var calls []string
	for _, k := range slices.Sorted(maps.Keys(perNode)) {
		calls = append(calls, fmt.Sprintf("%s %.2f", k, perNode[k]))
	}
	return strings.Join(calls, ", ")
}

func loadString(l [3]float64) string {
	return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2])
}

func rateString(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g steps/s", r)
}

func floats(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', -1, 64)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func writeWaiting(w io.Writer, r *WaitingReport) {
	fmt.Fprintf(w, "\n-- %d requests waiting at max-servers %d: written in %.1f s, all waiting %.1f s later (ledger counts %d)\n",
		r.Requests, r.Capacity, r.SubmitSeconds, r.SettleSeconds, r.LedgerWaiting)
	fmt.Fprintf(w, "   idle window %.0f s: launcher ZooKeeper requests %.1f/s\n", r.WindowSeconds, r.LauncherZKPerSecond)
	for _, u := range r.Usage {
		fmt.Fprintf(w, "   %-14s cpu %6.1f%% of a core, peak rss %.0f MiB\n", u.Name, u.CPUPercent, u.PeakRSSMiB)
	}
	fmt.Fprintf(w, "   ledger: %d history events (%d KiB) in its current run, %.2f events/s, %.2f signals/s; oldest waiting request's history: %d events\n",
		r.LedgerEvents, r.LedgerHistoryBytes/1024, r.LedgerEventsPerSecond, r.LedgerSignalsPerSec, r.OldestRequestEvents)
	fmt.Fprintf(w, "   served as capacity freed: %d, out of Nodepool's order: %d, errors: %d; ranks %v\n",
		r.Served, r.OutOfOrder, r.ServeErrors, r.Ranks)
}

func writeReuse(w io.Writer, r *ReuseReport) {
	fmt.Fprintf(w, "\n-- reuse: min-ready %d (first %d ready %.1f s after the launcher started); %d of %d requests fulfilled, %d (%.0f%%) from a node ready before the request\n",
		r.MinReady, r.MinReady, r.InitialReadySeconds, r.Fulfilled, r.Requests, r.FromReady, 100*r.FromReadyShare)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "   seconds\tp50\tp95\tp99\tmin\tmax\tmean\t\n")
	row := func(name string, s *Summary) {
		if s != nil {
			fmt.Fprintf(tw, "   %s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, s.P50, s.P95, s.P99, s.Min, s.Max, s.Mean)
		}
	}
	row("submit to fulfilled, all", r.Launch)
	row("submit to fulfilled, from ready", r.ReadyLaunch)
	row("fulfilled to min-ready restored", r.Replenish)
	tw.Flush()
}

func writeFloor(w io.Writer, f *FloorReport) {
	fmt.Fprintf(w, "\n-- engine floor: %d trivial workflows (3 activities, a %s timer) at once on the same server: %d completed in %.1f s, %.1f workflows/s, %d history events each\n",
		f.Workflows, floorTimer, f.Completed, f.WallSeconds, f.WorkflowsPerSecond, f.HistoryEvents)
	for _, e := range f.Errors {
		fmt.Fprintf(w, "   error: %s\n", firstLine(e))
	}
	if s := f.StartToClose; s != nil {
		fmt.Fprintf(w, "   start to close: p50 %.3f s, p95 %.3f s, max %.3f s\n", s.P50, s.P95, s.Max)
	}
	for _, u := range f.Usage {
		fmt.Fprintf(w, "   %-14s cpu %6.1f s (%.1f%% of a core)\n", u.Name, u.CPUSeconds, u.CPUPercent)
	}
	if f.NodesPerFloorWorkflow > 0 {
		fmt.Fprintf(w, "   burst nodes/s over floor workflows/s: %.2f\n", f.NodesPerFloorWorkflow)
	}
}

func writeCosts(w io.Writer, rows []CostRow) {
	fmt.Fprintf(w, "\n-- cost per node by burst size (launch and return)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "   size\tnodes\tnodes/s\tserver CPU ms\tlauncher CPU ms\thistory events\t(request\tdelete\tledger)\tZK writes\tcloud calls\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "   %d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.1f\t%.1f\t%.2f\t\n", r.Size, r.Nodes, r.NodesPerSecond,
			r.ServerCPUms, r.LauncherCPUms, r.HistoryEvents, r.RequestEvents, r.DeleteEvents, r.LedgerEvents, r.ZKWrites, r.CloudCalls)
	}
	tw.Flush()
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "   size %d: %s\n", r.Size, firstLine(r.Error))
		}
	}
}

// intsString renders sizes as "1, 10 and 100".
func intsString(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
