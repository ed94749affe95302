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

// parseProcStat returns utime+stime, in clock ticks, from the text of /proc/PID/stat.
// The command name (field 2) may contain spaces and parentheses, so fields are counted
// from the last ')'.
func parseProcStat(s string) (int64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc stat: no command name in %q", s)
	}
	// After ") " come field 3 (state) onwards; utime and stime are fields 14 and 15.
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("parsing /proc stat: %d fields after the command name", len(fields))
	}
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc stat utime: %w", err)
	}
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc stat stime: %w", err)
	}
	return utime + stime, nil
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
	// Processes is the number of processes summed.
	Processes int `json:"processes"`
	// CPUSeconds is utime+stime used during the phase.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPercent is CPUSeconds over the phase's wall time, in percent of one core.
	CPUPercent float64 `json:"cpu_percent"`
	// PeakRSSMiB is the highest sampled resident memory during the phase (summed over
	// the component's processes).
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// HWMMiB is VmHWM at the end of the phase: the peak since the process started.
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

// monitor tracks the CPU and memory of the benchmark's processes.
type monitor struct {
	mu    sync.Mutex
	procs map[string][]int // component name to pids
	order []string

	// Per mark: CPU ticks per pid, machine ticks, time, and peak RSS per component.
	markTicks  map[int]int64
	markBusy   int64
	markTotal  int64
	markTime   time.Time
	peakRSSKiB map[string]int64
}

func newMonitor() *monitor {
	return &monitor{procs: map[string][]int{}, markTicks: map[int]int64{}, peakRSSKiB: map[string]int64{}}
}

// track adds a process to a component.
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

func (m *monitor) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, pids := range m.procs {
		var sum int64
		for _, pid := range pids {
			if rss, _, err := readMemory(pid); err == nil {
				sum += rss
			}
		}
		m.peakRSSKiB[name] = max(m.peakRSSKiB[name], sum)
	}
}

// mark starts a phase: CPU counters are read and the RSS peaks reset.
func (m *monitor) mark() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.markTicks = map[int]int64{}
	for _, pids := range m.procs {
		for _, pid := range pids {
			if t, err := readCPUTicks(pid); err == nil {
				m.markTicks[pid] = t
			}
		}
	}
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
	for _, name := range m.order {
		u := ProcUsage{Name: name, Processes: len(m.procs[name]), PeakRSSMiB: float64(m.peakRSSKiB[name]) / 1024}
		for _, pid := range m.procs[name] {
			if t, err := readCPUTicks(pid); err == nil {
				d := t - m.markTicks[pid]
				ours += d
				u.CPUSeconds += float64(d) / clockTicks
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
