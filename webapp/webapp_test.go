package webapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// base is the state_time of the test records; the clock starts 1d 2h 3m 4s later.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func strp(s string) *string { return &s }

// env is a web app over a private corner of the test ZooKeeper, served over HTTP.
type env struct {
	zk    *zookeeper.Client
	clock *testenv.ManualClock
	app   *App
	url   string
}

func start(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	addr, chroot := testenv.ZooKeeperChroot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{addr}, Chroot: chroot})
	require.NoError(t, err)
	t.Cleanup(zk.Close)
	clock := testenv.NewManualClock(base.Add(26*time.Hour + 3*time.Minute + 4*time.Second))
	opts := Options{ZK: zk, Now: clock.Now}
	if edit != nil {
		edit(&opts)
	}
	app := New(opts)
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return &env{zk: zk, clock: clock, app: app, url: srv.URL}
}

// get fetches path with the given Accept header ("" for none).
func (e *env) get(t *testing.T, path, accept string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func (e *env) createNode(t *testing.T, n *zookeeper.Node) string {
	t.Helper()
	id, err := e.zk.CreateNode(context.Background(), n)
	require.NoError(t, err)
	return id
}

func (e *env) seed(t *testing.T) (ready, building string) {
	t.Helper()
	ready = e.createNode(t, &zookeeper.Node{
		State: zookeeper.NodeReady, StateTime: zookeeper.Timestamp(base), Type: zookeeper.Labels{"ubuntu-jammy"},
		Provider: "aws-us-east-1", Pool: "main", Launcher: "host-PoolWorker.aws-us-east-1-main",
		ExternalID: json.RawMessage(`{"instance":"i-0abc"}`), PublicIPv4: strp("203.0.113.5"),
		PrivateIPv4: strp("10.0.0.5"), AZ: strp("us-east-1a"), Username: strp("ubuntu"),
		ConnectionPort: json.RawMessage(`22`), AllocatedTo: strp("200-0000000001"),
		UserData: json.RawMessage(`{"zuul_system": "z1"}`),
	})
	building = e.createNode(t, &zookeeper.Node{
		State: zookeeper.NodeBuilding, StateTime: zookeeper.Timestamp(base.Add(26 * time.Hour)), Type: zookeeper.Labels{"small", "large"},
		Provider: "sim", Pool: "p", ConnectionPort: json.RawMessage(`{"token": "secret"}`), Comment: strp("multi\nline"),
	})
	lock := e.zk.NewLock(zookeeper.NodeLockPath(building), "test")
	require.NoError(t, lock.Acquire(context.Background(), 5*time.Second))
	t.Cleanup(func() { _ = lock.Release(context.Background()) })
	return ready, building
}

func TestNodeListJSON(t *testing.T) {
	e := start(t, nil)
	ready, building := e.seed(t)
	resp, body := e.get(t, "/node-list", "application/json")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "application/json; charset=UTF-8", resp.Header.Get("Content-Type"))
	want := `[{"id": "` + ready + `", "provider": "aws-us-east-1", "label": ["ubuntu-jammy"], "server_id": {"instance": "i-0abc"}, ` +
		`"public_ipv4": "203.0.113.5", "ipv6": null, "state": "ready", "age": "01:02:03:04", "locked": "unlocked", ` +
		`"pool": "main", "hostname": null, "private_ipv4": "10.0.0.5", "AZ": "us-east-1a", "username": "ubuntu", ` +
		`"connection_port": 22, "launcher": "host-PoolWorker.aws-us-east-1-main", "allocated_to": "200-0000000001", ` +
		`"hold_job": null, "comment": null, "user_data": {"zuul_system": "z1"}, "driver_data": null}, ` +
		`{"id": "` + building + `", "provider": "sim", "label": ["small", "large"], "server_id": null, ` +
		`"public_ipv4": null, "ipv6": null, "state": "building", "age": "00:00:03:04", "locked": "locked", ` +
		`"pool": "p", "hostname": null, "private_ipv4": null, "AZ": null, "username": null, ` +
		`"connection_port": "redacted", "launcher": null, "allocated_to": null, ` +
		`"hold_job": null, "comment": "multi\nline", "user_data": null, "driver_data": null}]`
	assert.Equal(t, want, body)

	var objs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &objs), "valid JSON")
	require.Len(t, objs, 2)
	assert.Len(t, objs[0], len(nodeColumns))

	_, body = e.get(t, "/node-list?node_id="+building, "application/json")
	require.NoError(t, json.Unmarshal([]byte(body), &objs))
	require.Len(t, objs, 1)
	assert.Equal(t, building, objs[0]["id"])

	for _, id := range []string{"0099999999", "..", "../requests", "a%00b"} {
		resp, body := e.get(t, "/node-list?node_id="+id, "application/json")
		assert.Equal(t, http.StatusOK, resp.StatusCode, id)
		assert.Equal(t, "[]", body, id)
	}
}

func TestNodeListText(t *testing.T) {
	e := start(t, nil)
	ready, building := e.seed(t)
	resp, body := e.get(t, "/node-list?fields=id,label,state,age,locked,connection_port,comment,nope", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "text/plain; charset=UTF-8", resp.Header.Get("Content-Type"))
	want := strings.Join([]string{
		"+------------+--------------+----------+-------------+----------+----------+---------+",
		"| ID         | Label        | State    | Age         | Locked   | Port     | Comment |",
		"+------------+--------------+----------+-------------+----------+----------+---------+",
		"| " + ready + " | ubuntu-jammy | ready    | 01:02:03:04 | unlocked | 22       |         |",
		"| " + building + " | small,large  | building | 00:00:03:04 | locked   | redacted | multi   |",
		"|            |              |          |             |          |          | line    |",
		"+------------+--------------+----------+-------------+----------+----------+---------+",
	}, "\n")
	assert.Equal(t, want, body, "columns in upstream's order, unknown fields ignored, no final newline")

	_, body = e.get(t, "/node-list", "text/plain")
	lines := strings.Split(body, "\n")
	require.Len(t, lines, 7)
	for _, h := range []string{"ID", "Provider", "Label", "Server ID", "Public IPv4", "IPv6", "State", "Age", "Locked",
		"Pool", "Hostname", "Private IPv4", "AZ", "Username", "Port", "Launcher", "Allocated To", "Hold Job",
		"Comment", "User Data", "Driver Data"} {
		assert.Contains(t, lines[1], "| "+h+" ")
	}
	assert.Contains(t, lines[3], `| {"instance":"i-0abc"} |`)
	assert.Contains(t, lines[3], `| {"zuul_system":"z1"} |`)
}

func TestRequestList(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	first := &zookeeper.NodeRequest{State: zookeeper.StateRequested, NodeTypes: []string{"small", "small"},
		Requestor: strp("zuul.example.com"), RelativePriority: 2, EventID: strp("ev1"), Reuse: true}
	_, err := e.zk.SubmitRequest(ctx, first, "100", false)
	require.NoError(t, err)
	second := &zookeeper.NodeRequest{State: zookeeper.StateFulfilled, NodeTypes: []string{"large"},
		Nodes: []string{"0000000007"}, DeclinedBy: []string{"a-PoolWorker.x-y", "b-PoolWorker.x-y"}}
	_, err = e.zk.SubmitRequest(ctx, second, "200", false)
	require.NoError(t, err)
	bad, err := e.zk.Create(ctx, zookeeper.RequestsPath+"/300-", []byte("not json"), 2 /* sequential */)
	require.NoError(t, err)
	badID := bad[strings.LastIndex(bad, "/")+1:]

	_, body := e.get(t, "/request-list", "application/json")
	want := `[{"id": "` + first.ID + `", "relative_priority": 2, "state": "requested", "requestor": "zuul.example.com", ` +
		`"node_types": ["small", "small"], "nodes": [], "declined_by": [], "event_id": "ev1"}, ` +
		`{"id": "` + second.ID + `", "relative_priority": 0, "state": "fulfilled", "requestor": null, ` +
		`"node_types": ["large"], "nodes": ["0000000007"], "declined_by": ["a-PoolWorker.x-y", "b-PoolWorker.x-y"], "event_id": null}, ` +
		`{"id": "` + badID + `", "relative_priority": null, "state": "malformed", "requestor": null, ` +
		`"node_types": null, "nodes": null, "declined_by": null, "event_id": null}]`
	assert.Equal(t, want, body)

	_, body = e.get(t, "/request-list?fields=id,state,declined_by", "text/html,application/xhtml+xml,*/*;q=0.8")
	want = strings.Join([]string{
		"+----------------+-----------+-----------------------------------+",
		"| Request ID     | State     | Declined By                       |",
		"+----------------+-----------+-----------------------------------+",
		"| " + first.ID + " | requested |                                   |",
		"| " + second.ID + " | fulfilled | a-PoolWorker.x-y,b-PoolWorker.x-y |",
		"| " + badID + " | malformed |                                   |",
		"+----------------+-----------+-----------------------------------+",
	}, "\n")
	assert.Equal(t, want, body)
}

func TestLabelAndImageLists(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	for i, labels := range [][]string{{"small", "large"}, {"large", "gpu"}} {
		_, err := e.zk.RegisterPool(ctx, zookeeper.PoolComponent{Hostname: "host", ID: fmt.Sprintf("pool-%d", i),
			Name: "p", ProviderName: "sim", SupportedLabels: labels})
		require.NoError(t, err)
	}
	_, body := e.get(t, "/label-list", "application/json")
	assert.Equal(t, `[{"label": "gpu"}, {"label": "large"}, {"label": "small"}]`, body)
	_, body = e.get(t, "/label-list", "")
	assert.Equal(t, "+-------+\n| Label |\n+-------+\n| gpu   |\n| large |\n| small |\n+-------+", body)

	for path, header := range map[string]string{
		"/image-list":     "| Build ID | Upload ID | Provider | Image | Provider Image Name | Provider Image ID | State | Age |",
		"/dib-image-list": "| ID | Image | Builder | Formats | State | Age |",
		"/image-status":   "| Image | Paused | Build Request | Build Request Age |",
	} {
		resp, body := e.get(t, path, "application/json")
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Equal(t, "[]", body, path)
		_, body = e.get(t, path, "")
		lines := strings.Split(body, "\n")
		require.Len(t, lines, 4, path)
		assert.Equal(t, header, lines[1], path)
		assert.Equal(t, lines[0], lines[2], path)
		assert.Equal(t, lines[0], lines[3], path)
	}
}

func TestCachingHeadersAndConditionalGet(t *testing.T) {
	e := start(t, nil)
	ready, _ := e.seed(t)
	readAt := e.clock.Now()
	resp, body := e.get(t, "/node-list?fields=id", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "public, max-age=1", resp.Header.Get("Cache-Control"))
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, readAt.UTC().Format(http.TimeFormat), resp.Header.Get("Last-Modified"))
	assert.Equal(t, readAt.Add(time.Second).UTC().Format(http.TimeFormat), resp.Header.Get("Expires"))

	// Within the second, a new node is not seen: the listing comes from memory, in
	// either format, whatever the fields.
	newer := e.createNode(t, &zookeeper.Node{State: zookeeper.NodeReady, Provider: "sim", Type: zookeeper.Labels{"small"}})
	e.clock.Advance(500 * time.Millisecond)
	_, again := e.get(t, "/node-list?fields=id", "")
	assert.Equal(t, body, again)
	_, asJSON := e.get(t, "/node-list", "application/json")
	assert.NotContains(t, asJSON, newer)
	assert.Contains(t, asJSON, ready)

	// A conditional GET for an unchanged listing is answered 304.
	resp, body = e.get(t, "/node-list?fields=id", "", "If-Modified-Since", readAt.UTC().Format(http.TimeFormat))
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Empty(t, body)

	// Once the second is over the listing is read again.
	e.clock.Advance(600 * time.Millisecond)
	resp, body = e.get(t, "/node-list?fields=id", "", "If-Modified-Since", readAt.UTC().Format(http.TimeFormat))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, newer)
	assert.Equal(t, e.clock.Now().UTC().Format(http.TimeFormat), resp.Header.Get("Last-Modified"))
}

// A burst of concurrent requests within a second is answered from one listing.
func TestConcurrentRequestsShareOneRead(t *testing.T) {
	e := start(t, nil)
	e.seed(t)
	var wg sync.WaitGroup
	bodies := make([]string, 50)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.url + "/node-list")
			if err != nil {
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			bodies[i] = string(b)
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		assert.Equal(t, bodies[0], b)
	}
	assert.Equal(t, int64(1), e.app.reads.Load(), "one ZooKeeper listing for the burst")
}

func TestReady(t *testing.T) {
	var started bool
	var mu sync.Mutex
	e := start(t, func(o *Options) {
		o.Pools = []string{"host-PoolWorker.sim-main"}
		o.Started = func() bool { mu.Lock(); defer mu.Unlock(); return started }
	})
	resp, _ := e.get(t, "/ready", "")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "not started")

	mu.Lock()
	started = true
	mu.Unlock()
	resp, _ = e.get(t, "/ready", "")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "pool not registered yet")

	_, err := e.zk.RegisterPool(context.Background(), zookeeper.PoolComponent{Hostname: "host",
		ID: "host-PoolWorker.sim-main", Name: "main", ProviderName: "sim", SupportedLabels: []string{"small"}})
	require.NoError(t, err)
	resp, body := e.get(t, "/ready", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "OK", body)
	assert.Equal(t, "public, max-age=1", resp.Header.Get("Cache-Control"))
}

func TestMetricsAndUnknownPaths(t *testing.T) {
	e := start(t, func(o *Options) {
		o.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "nodepool_up 1\n")
		})
	})
	resp, body := e.get(t, "/metrics", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "nodepool_up 1\n", body)
	for _, p := range []string{"/", "/node-list.json", "/healthz", "/nodes"} {
		resp, _ := e.get(t, p, "")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, p)
	}

	bare := start(t, nil)
	resp, _ = bare.get(t, "/metrics", "")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no metrics handler")
}

// Serve stops when its context ends.
func TestServeStops(t *testing.T) {
	e := start(t, nil)
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.app.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/label-list")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	_, err = Listen(ln.Addr().String())
	assert.NoError(t, err, "the port is free again")

	busy, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	_, err = Listen(busy.Addr().String())
	assert.ErrorContains(t, err, "web app")
}

func TestWantsJSON(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"application/json", true},
		{"*/*", false},
		{"text/plain", false},
		{"application/json, text/plain", false}, // a tie goes to the earlier offer
		{"application/json, */*;q=0.1", true},
		{"text/*;q=0.5, application/json", true},
		{"text/*;q=0.5, text/plain;q=0.2, application/json;q=0.4", false},
		{"text/html;q=0, text/plain;q=0, application/json;q=0.1", true},
		{"image/png", false},
		{"APPLICATION/JSON; charset=utf-8", true},
		{"garbage, application/json", true},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, wantsJSON(tc.accept), "Accept: %q", tc.accept)
	}
}

func TestFormatAge(t *testing.T) {
	assert.Equal(t, "00:00:00:00", formatAge(-time.Second))
	assert.Equal(t, "00:00:00:59", formatAge(59*time.Second+999*time.Millisecond))
	assert.Equal(t, "123:04:05:06", formatAge(123*24*time.Hour+4*time.Hour+5*time.Minute+6*time.Second))
}

func TestPyJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"b":1,"a":[1,2.50,{"x":null}],"c":true}`: `{"b": 1, "a": [1, 2.50, {"x": null}], "c": true}`,
		`[]`:                        `[]`,
		`{}`:                        `{}`,
		`[[],{}]`:                   `[[], {}]`,
		`"caf\u00e9 \ud83d\ude80"`:  `"caf\u00e9 \ud83d\ude80"`,
		`"tab\tquote\" slash/ del"`: `"tab\tquote\" slash/ \u007f"`,
		`"<&>"`:                     `"<&>"`,
	} {
		if in == `"tab\tquote\" slash/ del"` {
			in = "\"tab\\tquote\\\" slash/ \x7f\""
		}
		got, err := pyJSON([]byte(in))
		require.NoError(t, err, in)
		assert.Equal(t, want, string(got), in)
	}
	_, err := pyJSON([]byte(`{"a":`))
	assert.Error(t, err)
	_, err = pyJSON([]byte(`1 2`))
	assert.Error(t, err)
}
