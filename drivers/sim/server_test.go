package sim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

func TestHandlerReplies(t *testing.T) {
	cloud, err := NewCloud(Config{})
	require.NoError(t, err)
	srv := httptest.NewServer(NewHandler(cloud, nil))
	t.Cleanup(srv.Close)

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   ErrorCode
	}{
		{"malformed create", http.MethodPost, "/v1/instances", "{", http.StatusBadRequest, CodeInvalidParameter},
		{"invalid create", http.MethodPost, "/v1/instances", `{"name": ""}`, http.StatusBadRequest, CodeInvalidParameter},
		{"unknown instance", http.MethodGet, "/v1/instances/sim-9", "", http.StatusNotFound, CodeNotFound},
		{"delete unknown instance", http.MethodDelete, "/v1/instances/sim-9", "", http.StatusNotFound, CodeNotFound},
		{"unknown call kind", http.MethodPost, "/inject", `{"call": "reboot", "code": "Throttling"}`, http.StatusBadRequest, CodeInvalidParameter},
		{"unknown error code", http.MethodPost, "/inject", `{"call": "create", "code": "Oops"}`, http.StatusBadRequest, CodeInvalidParameter},
		{"malformed injection", http.MethodPost, "/inject", `[]`, http.StatusBadRequest, CodeInvalidParameter},
		{"injection", http.MethodPost, "/inject", `{"call": "list", "code": "Throttling"}`, http.StatusOK, ""},
		{"injected list error", http.MethodGet, "/v1/instances", "", http.StatusTooManyRequests, CodeThrottling},
		{"list", http.MethodGet, "/v1/instances", "", http.StatusOK, ""},
		{"stats", http.MethodGet, "/stats", "", http.StatusOK, ""},
		{"instances", http.MethodGet, "/instances", "", http.StatusOK, ""},
		{"limits", http.MethodGet, "/v1/limits", "", http.StatusOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tc.wantStatus, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			if tc.wantCode != "" {
				var ae APIError
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&ae))
				assert.Equal(t, tc.wantCode, ae.Code)
				assert.NotEmpty(t, ae.Message)
			}
		})
	}
}

func TestClientTransportErrors(t *testing.T) {
	ctx := context.Background()
	// A server that is gone, and one that answers something other than simcloud JSON.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	teapot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusTeapot)
	}))
	t.Cleanup(teapot.Close)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("not json"))
	}))
	t.Cleanup(garbage.Close)

	for _, url := range []string{gone.URL, teapot.URL, garbage.URL} {
		cfg := testConfig().withoutCloudKeys()
		cfg.Server = url
		d, err := New("sim-test", cfg)
		require.NoError(t, err)
		_, err = d.ListInstances(ctx)
		require.Error(t, err)
		assert.Equal(t, drivers.KindTransient, drivers.KindOf(err), "error from %s: %v", url, err)
	}

	for _, bad := range []string{"ftp://example.com", "::", "http://"} {
		_, err := NewClient(bad)
		assert.Error(t, err, "url %q", bad)
	}
}

func TestHandlerFaultsAndCreations(t *testing.T) {
	cloud, err := NewCloud(Config{})
	require.NoError(t, err)
	srv := httptest.NewServer(NewHandler(cloud, nil))
	t.Cleanup(srv.Close)
	do := func(method, path, body string) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := do(http.MethodPut, PathFaults, `{"rate_limit_rate": 0.5, "error_rate": {"create": 0.25}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, Faults{RateLimitRate: 0.5, ErrorRate: FaultRates{Create: 0.25}}, cloud.Faults())
	resp = do(http.MethodPut, PathFaults, `{"rate_limit_rate": 5}`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp = do(http.MethodPut, PathFaults, `{"typo": 1}`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp = do(http.MethodGet, PathFaults, "")
	var f Faults
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&f))
	assert.InDelta(t, 0.5, f.RateLimitRate, 1e-9)

	require.NoError(t, cloud.SetFaults(Faults{}))
	_, err = cloud.CreateInstance(t.Context(), CreateInstanceInput{Name: "n", Image: "i", Metadata: map[string]string{drivers.MetaNodeID: "0000000001"}})
	require.NoError(t, err)
	resp = do(http.MethodGet, PathCreations, "")
	var got map[string]int64
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, map[string]int64{"0000000001": 1}, got)
}
