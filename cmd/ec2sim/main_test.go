package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/ec2sim"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--seed", "3", "--boot-time", "10ms",
			"--error-rate", "throttle=0", "--vcpu-limit", "L-1216C47A=8", "--log-level", "warn"}, pw, io.Discard)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ec2sim listening on ")
	require.True(t, ok, "unexpected banner %q", line)

	form := strings.NewReader("Action=DescribeInstances&Version=2016-11-15")
	resp, err := http.Post("http://"+addr+"/", "application/x-www-form-urlencoded", form)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = http.Get("http://" + addr + "/_stats")
	require.NoError(t, err)
	var st ec2sim.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	require.NoError(t, resp.Body.Close())
	require.Equal(t, int64(1), st.Calls["DescribeInstances"])

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"rate out of range", []string{"--error-rate", "throttle=2"}, "not a fraction"},
		{"unknown rate", []string{"--error-rate", "meteor=0.1"}, "unknown kind"},
		{"malformed rate", []string{"--error-rate", "throttle"}, "KEY=VALUE"},
		{"bad limit", []string{"--vcpu-limit", "L-1216C47A=many"}, "non-negative integer"},
		{"bad level", []string{"--log-level", "loud"}, "--log-level"},
		{"extra args", []string{"serve"}, "unexpected arguments"},
		{"bad listen", []string{"--listen", "256.0.0.1:1"}, "listening on"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
