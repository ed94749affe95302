package chaos

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// scenarioReport is the outcome of one scenario.
type scenarioReport struct {
	Name, What string
	Passed     bool
	// Violations are the failed checks.
	Violations []string
	// Notes are findings that break no check (see scenario.declines).
	Notes []string
	// ZuulProblems are problems on Zuul's side of the exchange that do not break a
	// guarantee by themselves (for example a node lock lost with Zuul's own session).
	ZuulProblems []string
	// Warnings counts the Zuul client's retried reads and the like.
	Warnings int64
	// AttemptFailures counts the failed launch attempts by reason (from the workers'
	// logs).
	AttemptFailures map[string]int
	// Injected is what was injected, and when.
	Injected []string
	// CloudErrors are the errors the cloud answered, by code.
	CloudErrors map[string]int64
	MaxServers  int
	// Requests of the burst: all, multi-node ones, fulfilled, failed; Nodes fulfilled.
	Requests, Multi, Fulfilled, Failed, Nodes int
	// Created counts every instance the cloud created in the scenario (follow-up
	// included); MostPerNode is the most instances one node id had at once.
	Created, MostPerNode int64
	FollowUpSize         int
	FollowUpFulfilled    int
	// Startup is the deployment's start, Burst the first submit to the last request's
	// end, Recovery the first injection to the last request's end, Clean the wait for
	// every node and instance to be gone, FollowUp the follow-up burst until every
	// request was fulfilled.
	Startup, Burst, Recovery, Clean, FollowUp time.Duration
	// Dir is the kept directory of configuration and logs.
	Dir string
}

// runReport is the outcome of a run.
type runReport struct {
	Mode              mode
	Started, Finished time.Time

	mu        sync.Mutex
	Scenarios []*scenarioReport
}

func (r *runReport) add(s *scenarioReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Scenarios = append(r.Scenarios, s)
}

func secs(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// markdown renders the report.
func (r *runReport) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	passed := 0
	for _, s := range r.Scenarios {
		if s.Passed {
			passed++
		}
	}
	host, _ := os.Hostname()
	w("# Reliability: the fault-injection suite\n\n")
	w("Figures of one run of the fault-injection suite (`chaos/`), written by the suite itself.\n")
	w("Rerun with `make chaos` (the long version); `make test` runs the short one.\n\n")
	w("Each scenario starts a fresh deployment of separate processes on one machine: ZooKeeper, the\n")
	w("Temporal dev server on a database file, one simulated cloud shared by the launchers (the\n")
	w("`sim` driver's simcloud server, or ec2sim behind the `aws` driver), one launcher running the\n")
	w("poller (`--role poller`) and two running the workers (`--role worker`). The suite acts as\n")
	w("Zuul through ZooKeeper only: it submits a burst of requests (a quarter of them for two or\n")
	w("three nodes of two sizes), accepts the nodes of every fulfilled request (lock, delete the\n")
	w("request, in-use), keeps them briefly and returns them (used, unlock), and deletes failed\n")
	w("requests. One fault is injected while the burst runs. Then it checks:\n\n")
	w("1. every request ended fulfilled or failed (declined), and none is left pending;\n")
	w("2. every returned node is deleted, and no node or request znode is left;\n")
	w("3. the cloud has no instance left (its own listing);\n")
	w("4. no node id ever had two instances at once (each launch attempt gets at most one, and a failed\n")
	w("   attempt's instance is deleted before the next; the cloud counts per node id);\n")
	w("5. no node was part of two fulfilled requests;\n")
	w("6. the pool's whole capacity is available again: a follow-up burst of max-servers single-node\n")
	w("   requests is fulfilled while every node is held, then returned and deleted.\n\n")
	w("## Run\n\n")
	w("| | |\n| --- | --- |\n")
	w("| version | %s, %s |\n", r.Mode.name, modeSummary(r.Mode))
	w("| started | %s |\n", r.Started.UTC().Format("2006-01-02 15:04 MST"))
	w("| duration | %s |\n", r.Finished.Sub(r.Started).Round(time.Second))
	w("| machine | %s, %d CPUs, %s/%s, %s (shared with other work) |\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	w("| result | %d of %d scenarios passed |\n\n", passed, len(r.Scenarios))

	w("## Scenarios\n\n")
	w("| scenario | result | requests (multi-node) | fulfilled / failed | nodes | instances created (most at once per node id) | cloud errors answered (not-found apart) | burst | recovery | cleanup | follow-up (fulfilled at once) |\n")
	w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range r.Scenarios {
		result := "passed"
		if !s.Passed {
			result = fmt.Sprintf("**failed** (%d)", len(s.Violations))
		}
		w("| %s | %s | %d (%d) | %d / %d | %d | %d (%d) | %s | %s | %s | %s | %s (%d of %d) |\n",
			s.Name, result, s.Requests, s.Multi, s.Fulfilled, s.Failed, s.Nodes, s.Created, s.MostPerNode,
			errorsSummary(s.CloudErrors), secs(s.Burst), secs(s.Recovery), secs(s.Clean), secs(s.FollowUp),
			s.FollowUpFulfilled, s.FollowUpSize)
	}
	w("\nBurst: first submit to the last request's end. Recovery: first injection to the last\n")
	w("request's end. Cleanup: from then until no node, request or instance was left.\n\n")

	w("## Details\n\n")
	for _, s := range r.Scenarios {
		w("### %s\n\n", s.Name)
		w("%s. Pool max-servers %d.\n\n", s.What, s.MaxServers)
		if len(s.Injected) > 0 {
			w("Injected (time from the burst's first submit):\n\n")
			for _, e := range s.Injected {
				w("- %s\n", e)
			}
			w("\n")
		}
		if s.Passed {
			w("Every check passed.\n\n")
		} else {
			w("Failed checks:\n\n")
			for _, v := range s.Violations {
				w("- %s\n", oneLine(v))
			}
			w("\n")
		}
		for _, n := range s.Notes {
			w("Note: %s.\n\n", n)
		}
		if len(s.AttemptFailures) > 0 {
			w("Failed launch attempts, by reason (from the workers' logs):\n\n")
			reasons := make([]string, 0, len(s.AttemptFailures))
			for r := range s.AttemptFailures {
				reasons = append(reasons, r)
			}
			sort.Slice(reasons, func(i, j int) bool {
				a, b := s.AttemptFailures[reasons[i]], s.AttemptFailures[reasons[j]]
				return a > b || (a == b && reasons[i] < reasons[j])
			})
			for _, r := range first(reasons, 8) {
				if n, ok := s.AttemptFailures[r]; ok {
					w("- %d × %s\n", n, r)
				} else {
					w("- %s\n", r)
				}
			}
			w("\n")
		}
		if len(s.ZuulProblems) > 0 {
			w("Problems on Zuul's side of the exchange (%d):\n\n", len(s.ZuulProblems))
			for _, p := range first(s.ZuulProblems, 5) {
				w("- %s\n", oneLine(p))
			}
			w("\n")
		}
	}
	return b.String()
}

func modeSummary(m mode) string {
	return fmt.Sprintf("bursts of %d requests, pool max-servers %d, nodes held %s, sim boot %v s, EC2 boot %s",
		m.burst, m.maxServers, m.hold, m.bootSteps, m.bootTime)
}

func errorsSummary(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		// Not-found answers are the normal end of a deletion, not faults.
		if m[k] > 0 && !strings.Contains(k, "NotFound") {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func first(items []string, n int) []string {
	if len(items) > n {
		return append(items[:n:n], fmt.Sprintf("… and %d more", len(items)-n))
	}
	return items
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 600 {
		s = s[:600] + " …"
	}
	return s
}
