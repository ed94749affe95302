package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseProcStatus(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		rss, hwm int64
		wantErr  bool
	}{
		{"both", "Name:\tjava\nVmPeak:\t 9000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\nThreads: 40\n", 100000, 123456, false},
		{"missing HWM", "Name:\tx\nVmRSS:\t 10 kB\n", 0, 0, true},
		{"kernel thread", "Name:\tkthreadd\nThreads:\t1\n", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rss, hwm, err := parseProcStatus(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.rss, rss)
			assert.Equal(t, tc.hwm, hwm)
		})
	}
}

func TestParseCPULine(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		busy, total int64
		wantErr     bool
	}{
		{"with guest", "cpu  100 5 50 800 20 1 4 0 30 0\ncpu0 50 2 25 400 10 0 2 0 0 0\n", 160, 980, false},
		{"old kernel", "cpu 10 0 10 80\n", 20, 100, false},
		{"no cpu line", "intr 1 2 3\n", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			busy, total, err := parseCPULine(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.busy, busy)
			assert.Equal(t, tc.total, total)
		})
	}
}

func TestParseLoadAvg(t *testing.T) {
	got, err := parseLoadAvg("4.47 6.11 4.12 3/512 15690\n")
	require.NoError(t, err)
	assert.Equal(t, [3]float64{4.47, 6.11, 4.12}, got)
	_, err = parseLoadAvg("1.0\n")
	assert.Error(t, err)
}

// The parsers agree with this process's own /proc files.
func TestReadSelf(t *testing.T) {
	_, err := readCPUTicks(os.Getpid())
	require.NoError(t, err)
	rss, hwm, err := readMemory(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, rss)
	assert.GreaterOrEqual(t, hwm, rss)
	busy, total, err := readMachineCPU()
	require.NoError(t, err)
	assert.Positive(t, total)
	assert.LessOrEqual(t, busy, total)
}

func TestParseProcTimes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    procTimes
		wantErr string
	}{
		{"postmaster", "900 (postgres) S 1 900 900 0 -1 4194560 5000 0 0 0 40 10 700 300 20 0 1 0 100 2000000 4000",
			procTimes{ppid: 1, self: 50, children: 1000}, ""},
		{"backend", "901 (postgres: temporal) S 900 900 900 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 100 10",
			procTimes{ppid: 900, self: 10}, ""},
		{"name with spaces and parens", "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 100 10",
			procTimes{ppid: 1, self: 10}, ""},
		{"no name", "77 R 1", procTimes{}, "no command name"},
		{"short", "77 (x) R 1 2 3", procTimes{}, "fields after the command name"},
		{"bad utime", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 x 3 0", procTimes{}, "utime"},
		{"bad cutime", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 7 3 y 0 20", procTimes{}, "cutime"},
		{"bad ppid", "77 (x) R z 77 77 0 -1 0 0 0 0 0 7 3 0 0 20", procTimes{}, "ppid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcTimes(tc.in)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestTreeTicks(t *testing.T) {
	procs := map[int]procTimes{
		1:   {ppid: 0, self: 1000, children: 99999},
		900: {ppid: 1, self: 50, children: 1000}, // postmaster: 1000 from reaped backends
		901: {ppid: 900, self: 10},
		902: {ppid: 900, self: 20, children: 5},
		903: {ppid: 902, self: 1},
		950: {ppid: 1, self: 7}, // another process: not in the tree
	}
	tests := []struct {
		name    string
		root    int
		ticks   int64
		members []int
	}{
		{"forking server", 900, 50 + 1000 + 10 + 20 + 5 + 1, []int{900, 901, 902, 903}},
		{"leaf", 950, 7, []int{950}},
		{"gone", 4242, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ticks, members := newProcTree(procs).treeTicks(tc.root)
			assert.Equal(t, tc.ticks, ticks)
			assert.ElementsMatch(t, tc.members, members)
			if len(tc.members) > 0 {
				assert.Equal(t, tc.root, members[0], "the root comes first")
			}
		})
	}
}

func TestParseStatmPrivate(t *testing.T) {
	got, err := parseStatmPrivate("52000 3000 1000 200 0 4000 0\n", 4096)
	require.NoError(t, err)
	assert.Equal(t, int64(8000), got, "2000 private pages of 4 KiB")
	_, err = parseStatmPrivate("52000\n", 4096)
	assert.Error(t, err)
	got, err = readPrivateKiB(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, got)
}

// A component whose work is done by short-lived children (as PostgreSQL's backends
// do it) is charged for them: the shell sleeps, its children burn the CPU and exit.
func TestMonitorCountsExitedChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", `end=$(($(date +%s)+2)); while [ "$(date +%s)" -lt "$end" ]; do :; done; sleep 30`)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	m := newMonitor()
	m.track("forker", cmd.Process.Pid)
	m.mark()
	// Until the loop is over: every "date" it ran has exited and been reaped.
	require.Eventually(t, func() bool {
		_, members := newProcTree(readAllProcTimes()).treeTicks(cmd.Process.Pid)
		if len(members) != 2 {
			return false
		}
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", members[1]))
		return strings.Contains(string(data), "(sleep)")
	}, 20*time.Second, 50*time.Millisecond)
	own, err := readCPUTicks(cmd.Process.Pid)
	require.NoError(t, err)
	usage, _ := m.usage()
	require.Len(t, usage, 2)
	assert.Equal(t, "forker", usage[0].Name)
	assert.Equal(t, 2, usage[0].Processes, "the shell and its sleep")
	// The forked dates' time is in the shell's cutime: the component used more than
	// the shell's own time.
	assert.Greater(t, usage[0].CPUSeconds, float64(own)/clockTicks)
}
