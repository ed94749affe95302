package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// rssSampleInterval is how often the resident memory of each process is sampled to
// find a phase's peak.
const rssSampleInterval = 200 * time.Millisecond

// procTimes is what /proc/PID/stat says of a process's parent and CPU time.
type procTimes struct {
	ppid int
	// self is utime+stime and children cutime+cstime (the time of children it has
	// waited for), in clock ticks.
	self, children int64
}

// parseProcStat returns utime+stime, in clock ticks, from the text of /proc/PID/stat.
func parseProcStat(s string) (int64, error) {
	t, err := parseProcTimes(s)
	return t.self, err
}

// parseProcTimes parses the text of /proc/PID/stat. The command name (field 2) may
// contain spaces and parentheses, so fields are counted from the last ')'.
func parseProcTimes(s string) (procTimes, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("parsing /proc stat: no command name in %q", s)
	}
	// After ") " come field 3 (state) onwards: ppid is field 4; utime, stime, cutime
	// and cstime are fields 14 to 17.
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return procTimes{}, fmt.Errorf("parsing /proc stat: %d fields after the command name", len(fields))
	}
	var v [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} {
		if k >= len(fields) {
			break // cutime and cstime missing: a truncated line counts none
		}
		n, err := strconv.ParseInt(fields[k], 10, 64)
		if err != nil {
			return procTimes{}, fmt.Errorf("parsing /proc stat %s: %w", [...]string{"ppid", "utime", "stime", "cutime", "cstime"}[j], err)
		}
		v[j] = n
	}
	return procTimes{ppid: int(v[0]), self: v[1] + v[2], children: v[3] + v[4]}, nil
}

// procTree is every process's times with an index of each process's children.
type procTree struct {
	procs map[int]procTimes
	kids  map[int][]int
}

func newProcTree(procs map[int]procTimes) procTree {
	kids := map[int][]int{}
	for pid, t := range procs {
		kids[t.ppid] = append(kids[t.ppid], pid)
	}
	return procTree{procs: procs, kids: kids}
}

// treeTicks returns the CPU ticks of the process tree under root (root included) and
// its members, root first: each member's own time plus the time of the children it
// has reaped. A child that exits during a phase moves its time into its parent's
// children field, so the sum only grows, and a component whose work is done by forked
// processes (PostgreSQL's backends) is measured whole.
func (pt procTree) treeTicks(root int) (ticks int64, members []int) {
	if _, ok := pt.procs[root]; !ok {
		return 0, nil
	}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		members = append(members, pid)
		t := pt.procs[pid]
		ticks += t.self + t.children
		queue = append(queue, pt.kids[pid]...)
	}
	return ticks, members
}

// readAllProcTimes reads every process's times from /proc. Processes that exit while
// it reads are left out.
func readAllProcTimes() map[int]procTimes {
	out := map[int]procTimes{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if t, err := parseProcTimes(string(data)); err == nil {
			out[pid] = t
		}
	}
	return out
}

// parseProcStatus returns VmRSS and VmHWM, in KiB, from the text of /proc/PID/status.
func parseProcStatus(s string) (rssKiB, hwmKiB int64, err error) {
	found := 0
	for line := range strings.SplitSeq(s, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			return 0, 0, fmt.Errorf("parsing /proc status: empty %s", key)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing /proc status %s: %w", key, err)
		}
		if key == "VmRSS" {
			rssKiB = n
		} else {
			hwmKiB = n
		}
		found++
	}
	if found < 2 {
		return 0, 0, fmt.Errorf("parsing /proc status: VmRSS or VmHWM missing")
	}
	return rssKiB, hwmKiB, nil
}

// parseCPULine returns the busy and total clock ticks of all CPUs from the text of
// /proc/stat ("cpu user nice system idle iowait irq softirq steal ...").
func parseCPULine(s string) (busy, total int64, err error) {
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var vals []int64
		// guest and guest_nice (fields 9 and 10) are already part of user and nice.
		for _, v := range f[1:min(len(f), 9)] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("parsing /proc/stat: %w", err)
			}
			vals = append(vals, n)
			total += n
		}
		idle := vals[3]
		if len(vals) > 4 {
			idle += vals[4] // iowait
		}
		return total - idle, total, nil
	}
	return 0, 0, fmt.Errorf("parsing /proc/stat: no cpu line")
}

// parseLoadAvg returns the three load averages from the text of /proc/loadavg.
func parseLoadAvg(s string) ([3]float64, error) {
	var out [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return out, fmt.Errorf("parsing /proc/loadavg: %q", s)
	}
	for i := range 3 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return out, fmt.Errorf("parsing /proc/loadavg: %w", err)
		}
		out[i] = v
	}
	return out, nil
}

func readCPUTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of pid %d: %w", pid, err)
	}
	return parseProcStat(string(data))
}

func readMemory(pid int) (rssKiB, hwmKiB int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	return parseProcStatus(string(data))
}

func readMachineCPU() (busy, total int64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("reading /proc/stat: %w", err)
	}
	return parseCPULine(string(data))
}

func readLoadAvg() [3]float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return [3]float64{}
	}
	l, _ := parseLoadAvg(string(data))
	return l
}

// ProcUsage is what one component used during a phase.
type ProcUsage struct {
	// Name is the component ("launcher", "temporal-dev", ...); several processes of one
	// component (launcher workers) are summed.
	Name string `json:"name"`
	// Processes is the number of processes summed at the end of the phase: the
	// tracked ones and their descendants (PostgreSQL's backends).
	Processes int `json:"processes"`
	// CPUSeconds is the CPU time (utime+stime) the processes and their descendants
	// used during the phase, descendants that exited and were reaped included.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPercent is CPUSeconds over the phase's wall time, in percent of one core.
	CPUPercent float64 `json:"cpu_percent"`
	// PeakRSSMiB is the highest sampled resident memory during the phase, summed over
	// the component's processes; descendants count by their private resident memory,
	// since their shared memory is in their parent's resident set already.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// HWMMiB is VmHWM at the end of the phase: the peak since the process started
	// (tracked processes only).
	HWMMiB float64 `json:"vm_hwm_mib"`
}

// MachineUsage is the machine's CPU during a phase.
type MachineUsage struct {
	// BusyPercent is the busy time of all CPUs over the phase, in percent of one core
	// (the maximum is 100 × cores).
	BusyPercent float64 `json:"busy_percent"`
	// OtherPercent is the part of BusyPercent not used by the benchmark's processes
	// (other engineers' compilers, say).
	OtherPercent float64 `json:"other_percent"`
	// LoadAvg is the 1, 5 and 15 minute load average at the end of the phase.
	LoadAvg [3]float64 `json:"load_avg"`
}

// monitor tracks the CPU and memory of the benchmark's processes. Each tracked process
// counts with its descendants (procTree.treeTicks), so PostgreSQL's backends are PostgreSQL's and
// not "other processes".
type monitor struct {
	mu    sync.Mutex
	procs map[string][]int // component name to pids
	order []string

	// descendants of each tracked pid, as last seen (refreshed every
	// descendantRefresh samples, and at every mark and usage).
	descendants map[int][]int
	samples     int

	// Per mark: CPU ticks per tracked pid (its tree), machine ticks, time, and peak RSS
	// per component.
	markTicks  map[int]int64
	markBusy   int64
	markTotal  int64
	markTime   time.Time
	peakRSSKiB map[string]int64
}

// descendantRefresh is how many memory samples go by between rescans of /proc for
// the tracked processes' descendants.
const descendantRefresh = 5

func newMonitor() *monitor {
	return &monitor{procs: map[string][]int{}, descendants: map[int][]int{}, markTicks: map[int]int64{}, peakRSSKiB: map[string]int64{}}
}

// track adds a process, and the processes it forks, to a component.
func (m *monitor) track(name string, pid int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.procs[name]; !ok {
		m.order = append(m.order, name)
	}
	m.procs[name] = append(m.procs[name], pid)
}

// run samples resident memory until ctx ends.
func (m *monitor) run(ctx context.Context) {
	t := time.NewTicker(rssSampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sample()
		}
	}
}

// treeTicksLocked reads /proc once and returns every tracked pid's tree ticks,
// remembering each tree's descendants for the memory samples.
func (m *monitor) treeTicksLocked() (ticks map[int]int64, members map[int]int) {
	all := newProcTree(readAllProcTimes())
	ticks, members = map[int]int64{}, map[int]int{}
	for _, pids := range m.procs {
		for _, pid := range pids {
			t, tree := all.treeTicks(pid)
			if len(tree) == 0 {
				continue
			}
			ticks[pid], members[pid] = t, len(tree)
			m.descendants[pid] = tree[1:]
		}
	}
	return ticks, members
}

func (m *monitor) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.samples%descendantRefresh == 0 {
		m.treeTicksLocked()
	}
	m.samples++
	for name, pids := range m.procs {
		var sum int64
		for _, pid := range pids {
			if rss, _, err := readMemory(pid); err == nil {
				sum += rss
			}
			// A descendant's shared memory (PostgreSQL's shared buffers) is already in
			// its parent's resident set: it counts by its private memory.
			for _, d := range m.descendants[pid] {
				if kib, err := readPrivateKiB(d); err == nil {
					sum += kib
				}
			}
		}
		m.peakRSSKiB[name] = max(m.peakRSSKiB[name], sum)
	}
}

// readPrivateKiB returns a process's private resident memory in KiB: resident minus
// shared pages, from /proc/PID/statm (cheap to read, unlike smaps_rollup, which walks
// the page tables of every mapping).
func readPrivateKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	return parseStatmPrivate(string(data), int64(os.Getpagesize()))
}

// parseStatmPrivate returns resident minus shared, in KiB, from the text of
// /proc/PID/statm ("size resident shared text lib data dt", in pages of pageSize bytes).
func parseStatmPrivate(s string, pageSize int64) (int64, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return 0, fmt.Errorf("parsing statm: %q", s)
	}
	resident, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing statm resident: %w", err)
	}
	shared, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing statm shared: %w", err)
	}
	return max(0, resident-shared) * pageSize / 1024, nil
}

// mark starts a phase: CPU counters are read and the RSS peaks reset.
func (m *monitor) mark() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.markTicks, _ = m.treeTicksLocked()
	if t, err := readCPUTicks(os.Getpid()); err == nil {
		m.markTicks[os.Getpid()] = t
	}
	m.markBusy, m.markTotal, _ = readMachineCPU()
	m.markTime = time.Now()
	m.peakRSSKiB = map[string]int64{}
}

// usage returns what every component and the machine used since the last mark.
func (m *monitor) usage() ([]ProcUsage, MachineUsage) {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	wall := time.Since(m.markTime).Seconds()
	var out []ProcUsage
	var ours int64
	self := ProcUsage{Name: "npbench (Zuul)", Processes: 1}
	if t, err := readCPUTicks(os.Getpid()); err == nil {
		d := t - m.markTicks[os.Getpid()]
		ours += d
		self.CPUSeconds = float64(d) / clockTicks
	}
	if rss, hwm, err := readMemory(os.Getpid()); err == nil {
		self.PeakRSSMiB, self.HWMMiB = float64(rss)/1024, float64(hwm)/1024
	}
	ticks, members := m.treeTicksLocked()
	for _, name := range m.order {
		u := ProcUsage{Name: name, PeakRSSMiB: float64(m.peakRSSKiB[name]) / 1024}
		for _, pid := range m.procs[name] {
			if t, ok := ticks[pid]; ok {
				d := t - m.markTicks[pid]
				ours += d
				u.CPUSeconds += float64(d) / clockTicks
				u.Processes += members[pid]
			}
			if _, hwm, err := readMemory(pid); err == nil {
				u.HWMMiB += float64(hwm) / 1024
			}
		}
		if wall > 0 {
			u.CPUPercent = 100 * u.CPUSeconds / wall
		}
		out = append(out, u)
	}
	if wall > 0 {
		self.CPUPercent = 100 * self.CPUSeconds / wall
	}
	out = append(out, self)
	var mu MachineUsage
	if busy, total, err := readMachineCPU(); err == nil && total > m.markTotal {
		cores := float64(runtime.NumCPU())
		frac := float64(busy-m.markBusy) / float64(total-m.markTotal)
		mu.BusyPercent = 100 * cores * frac
		other := float64(busy-m.markBusy-ours) / float64(total-m.markTotal)
		mu.OtherPercent = max(0, 100*cores*other)
	}
	mu.LoadAvg = readLoadAvg()
	return out, mu
}
