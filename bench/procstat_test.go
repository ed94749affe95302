package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr string
	}{
		{"plain", "1234 (temporal-dev) S 1 1234 1234 0 -1 4194560 5000 0 0 0 1500 250 0 0 20 0 30 0 100 2000000 40000 18446744073709551615",
			1750, ""},
		{"name with spaces and parens", "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 100 10", 10, ""},
		{"no name", "77 R 1", 0, "no command name"},
		{"short", "77 (x) R 1 2 3", 0, "fields after the command name"},
		{"bad number", "77 (x) R 1 77 77 0 -1 0 0 0 0 0 x 3 0", 0, "utime"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat(tc.in)
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
