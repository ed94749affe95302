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

	"github.com/nodepool-temporal/nodepool-temporal/internal/ossim"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--seed", "3", "--boot-time", "10ms",
			"--error-rate", "rate_limit=0", "--max-cores", "8", "--ssh-addr", "127.0.0.1:22", "--log-level", "warn"}, pw, io.Discard)
		_ = pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ossim listening on ")
	require.True(t, ok, "unexpected banner %q", line)

	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"zuul","password":"pw","domain":{"name":"Default"}}}},
		"scope":{"project":{"name":"ci","domain":{"name":"Default"}}}}}`
	resp, err := http.Post("http://"+addr+"/identity/v3/auth/tokens", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	token := resp.Header.Get("X-Subject-Token")
	require.NotEmpty(t, token)

	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/compute/v2.1/limits", nil)
	require.NoError(t, err)
	req.Header.Set("X-Auth-Token", token)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var limits struct {
		Limits struct {
			Absolute struct {
				MaxTotalCores int `json:"maxTotalCores"`
			} `json:"absolute"`
		} `json:"limits"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&limits))
	require.NoError(t, resp.Body.Close())
	require.Equal(t, 8, limits.Limits.Absolute.MaxTotalCores)

	resp, err = http.Get("http://" + addr + "/_stats")
	require.NoError(t, err)
	var st ossim.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	require.NoError(t, resp.Body.Close())
	require.Equal(t, int64(1), st.Calls["Authenticate"])
	require.Equal(t, int64(1), st.Calls["GetLimits"])
	require.Equal(t, map[string]int64{"ci": 1}, st.Projects)

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
		{"rate out of range", []string{"--error-rate", "rate_limit=2"}, "not a fraction"},
		{"unknown rate", []string{"--error-rate", "meteor=0.1"}, "unknown kind"},
		{"malformed rate", []string{"--error-rate", "internal"}, "KEY=VALUE"},
		{"bad limit", []string{"--max-cores", "-5"}, "not a limit"},
		{"bad ssh addr", []string{"--ssh-addr", "localhost"}, "--ssh-addr"},
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
