package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
)

func TestMain(m *testing.M) { Main(m) }

// quietLogger keeps the SDK's INFO chatter out of test output.
var quietLogger = sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// echoWorkflow runs one activity and returns its result.
func echoWorkflow(ctx workflow.Context, s string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, shout, s).Get(ctx, &out)
	return out, err
}

func shout(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil }

// signalWorkflow sleeps on a durable timer, then waits for the "go" signal
// and returns its payload. The timer outlasts the server restart in
// TestStartTemporalDevPersistsAcrossRestart, so it must fire from the
// database.
func signalWorkflow(ctx workflow.Context) (string, error) {
	if err := workflow.Sleep(ctx, 2*time.Second); err != nil {
		return "", err
	}
	var v string
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, &v)
	return "got " + v, nil
}

func dial(t *testing.T, addr string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: addr, Logger: quietLogger})
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

func startWorker(t *testing.T, c client.Client, queue string) worker.Worker {
	t.Helper()
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(echoWorkflow)
	w.RegisterWorkflow(signalWorkflow)
	w.RegisterActivity(shout)
	if err := w.Start(); err != nil {
		t.Fatalf("starting worker: %v", err)
	}
	return w
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTemporalRunsWorkflowWithProjectSearchAttributes(t *testing.T) {
	ctx := testContext(t)
	addr := Temporal(t)
	if again := Temporal(t); again != addr {
		t.Fatalf("second Temporal call = %s, want the shared server %s", again, addr)
	}
	c := dial(t, addr)
	queue := "testenv-" + uuid.NewString()
	w := startWorker(t, c, queue)
	defer w.Stop()

	requestID := "100-" + uuid.NewString()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "echo-" + requestID,
		TaskQueue: queue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword("NodepoolRequestID").ValueSet(requestID),
			temporal.NewSearchAttributeKeyKeywordList("NodepoolLabel").ValueSet([]string{"ubuntu-noble", "debian"}),
			temporal.NewSearchAttributeKeyKeyword("NodepoolState").ValueSet("requested"),
		),
	}, echoWorkflow, "hello")
	if err != nil {
		t.Fatalf("starting workflow: %v", err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if got != "HELLO" {
		t.Errorf("workflow result = %q, want HELLO", got)
	}

	// Visibility is eventually consistent: poll the list query.
	query := fmt.Sprintf("NodepoolRequestID = '%s' AND NodepoolLabel = 'debian'", requestID)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("listing workflows with %q: %v", query, err)
		}
		if len(resp.GetExecutions()) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %q found %d workflows, want 1", query, len(resp.GetExecutions()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTemporalHasProjectSearchAttributes(t *testing.T) {
	ctx := testContext(t)
	c := dial(t, Temporal(t))
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatalf("listing search attributes: %v", err)
	}
	want := map[string]enumspb.IndexedValueType{
		"NodepoolRequestID": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"NodepoolLabel":     enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST,
		"NodepoolProvider":  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"NodepoolPool":      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"NodepoolNodeID":    enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST,
		"NodepoolTenant":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"NodepoolState":     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
	for name, typ := range want {
		if got := resp.GetCustomAttributes()[name]; got != typ {
			t.Errorf("search attribute %s = %v, want %v", name, got, typ)
		}
	}
}

// TestStartTemporalDevPersistsAcrossRestart starts a server on a database
// file with the UI, leaves a workflow waiting for a signal, restarts the
// server on the same file and completes the workflow.
func TestStartTemporalDevPersistsAcrossRestart(t *testing.T) {
	ctx := testContext(t)
	db := filepath.Join(t.TempDir(), "state", "temporal.db")
	opts := TemporalOptions{
		DBFile:           db,
		UI:               true,
		Namespaces:       []string{"nodepool"},
		SearchAttributes: map[string]string{"TestSize": "Int"},
	}

	first, err := StartTemporalDev(ctx, opts)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	defer first.Stop()
	if first.UIAddr == "" {
		t.Fatal("UIAddr is empty with UI enabled")
	}
	for _, path := range []string{"/", "/namespaces/default/workflows"} {
		resp, err := http.Get(first.UIURL() + path)
		if err != nil {
			t.Fatalf("GET UI %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(body)), "<html") {
			t.Errorf("GET UI %s = %s, %d bytes; want 200 with an HTML page", path, resp.Status, len(body))
		}
	}

	c1 := dial(t, first.Addr)
	queue := "persist-" + uuid.NewString()
	w1 := startWorker(t, c1, queue)
	id := "persist-" + uuid.NewString()
	if _, err := c1.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    id,
		TaskQueue:             queue,
		TypedSearchAttributes: temporal.NewSearchAttributes(temporal.NewSearchAttributeKeyInt64("TestSize").ValueSet(3)),
	}, signalWorkflow); err != nil {
		t.Fatalf("starting workflow: %v", err)
	}
	// Stop once the worker has run the first workflow task, which starts
	// the timer.
	waitForTimer(ctx, t, c1, id)
	w1.Stop()
	c1.Close()
	first.Stop()
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("database file after stop: %v", err)
	}

	// The restart adds a search attribute to namespaces that already exist
	// in the database; it must be usable as soon as the server is ready.
	opts.SearchAttributes["TestAdded"] = "Keyword"
	second, err := StartTemporalDev(ctx, opts)
	if err != nil {
		t.Fatalf("restart on %s: %v", db, err)
	}
	defer second.Stop()
	c2 := dial(t, second.Addr)
	w2 := startWorker(t, c2, queue)
	defer w2.Stop()
	if err := c2.SignalWorkflow(ctx, id, "", "go", "now"); err != nil {
		t.Fatalf("signalling workflow after restart: %v", err)
	}
	var got string
	if err := c2.GetWorkflow(ctx, id, "").Get(ctx, &got); err != nil {
		t.Fatalf("workflow result after restart: %v", err)
	}
	if got != "got now" {
		t.Errorf("workflow result = %q, want %q", got, "got now")
	}
	for _, ns := range []string{"default", "nodepool"} {
		resp, err := c2.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
		if err != nil {
			t.Fatalf("listing search attributes of %s: %v", ns, err)
		}
		attrs := resp.GetCustomAttributes()
		if attrs["TestSize"] != enumspb.INDEXED_VALUE_TYPE_INT ||
			attrs["TestAdded"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD ||
			attrs["NodepoolNodeID"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST {
			t.Errorf("search attributes of %s = %v, want TestSize Int, TestAdded Keyword and NodepoolNodeID KeywordList", ns, attrs)
		}
	}
	run, err := c2.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    "added-" + uuid.NewString(),
		TaskQueue:             queue,
		TypedSearchAttributes: temporal.NewSearchAttributes(temporal.NewSearchAttributeKeyKeyword("TestAdded").ValueSet("yes")),
	}, echoWorkflow, "added")
	if err != nil {
		t.Fatalf("starting a workflow with the search attribute added on restart: %v", err)
	}
	if err := run.Get(ctx, &got); err != nil || got != "ADDED" {
		t.Fatalf("workflow result = %q, %v; want ADDED", got, err)
	}
}

// TestSDKDevServerDrivesTemporalDev checks that the SDK's
// testsuite.StartDevServer can run temporal-dev in place of the Temporal CLI.
func TestSDKDevServerDrivesTemporalDev(t *testing.T) {
	ctx := testContext(t)
	bin, err := TemporalDevBinary()
	if err != nil {
		t.Fatalf("%v", err)
	}
	var stderr SyncBuffer
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     bin,
		ClientOptions:    &client.Options{Logger: quietLogger},
		LogLevel:         "error",
		SearchAttributes: temporal.NewSearchAttributes(temporal.NewSearchAttributeKeyKeyword("SDKKey").ValueSet("")),
		Stdout:           io.Discard,
		Stderr:           &stderr,
	})
	if err != nil {
		t.Fatalf("StartDevServer: %v\n%s", err, &stderr)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stopping dev server: %v\n%s", err, &stderr)
		}
	}()
	c := srv.Client()
	queue := "sdk-" + uuid.NewString()
	w := startWorker(t, c, queue)
	defer w.Stop()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, echoWorkflow, "sdk")
	if err != nil {
		t.Fatalf("starting workflow: %v", err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil || got != "SDK" {
		t.Fatalf("workflow result = %q, %v; want SDK", got, err)
	}
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatalf("listing search attributes: %v", err)
	}
	if resp.GetCustomAttributes()["SDKKey"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Errorf("search attributes = %v, want SDKKey Keyword", resp.GetCustomAttributes())
	}
}

func TestStartTemporalDevFailures(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		binary  string
		timeout time.Duration
		wantErr []string
	}{
		{
			name:    "missing binary",
			binary:  filepath.Join(dir, "nope"),
			timeout: 10 * time.Second,
			wantErr: []string{"starting", "nope"},
		},
		{
			name:    "exits early",
			binary:  script("fails", `echo "bind: address already in use" >&2; exit 3`),
			timeout: 10 * time.Second,
			wantErr: []string{"exited before becoming ready", "exit status 3", "address already in use"},
		},
		{
			name:    "never ready",
			binary:  script("hangs", `echo "starting" >&2; exec sleep 60`),
			timeout: 300 * time.Millisecond,
			wantErr: []string{"waiting for temporal-dev", "deadline exceeded", "starting"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			srv, err := StartTemporalDev(ctx, TemporalOptions{Binary: tt.binary})
			if err == nil {
				srv.Stop()
				t.Fatal("StartTemporalDev succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestStopIsIdempotentAndSignalsFakeServer(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "stopped")
	bin := filepath.Join(dir, "fake")
	body := fmt.Sprintf(`#!/bin/sh
trap 'echo term > %q; exit 0' TERM
echo "temporal-dev ready grpc=127.0.0.1:1234 ui=none"
while :; do sleep 0.05; done
`, marker)
	if err := os.WriteFile(bin, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := StartTemporalDev(ctx, TemporalOptions{Binary: bin})
	if err != nil {
		t.Fatalf("StartTemporalDev: %v", err)
	}
	if srv.Addr != "127.0.0.1:1234" || srv.UIAddr != "" || srv.UIURL() != "" {
		t.Errorf("Addr %q UIAddr %q, want 127.0.0.1:1234 and none", srv.Addr, srv.UIAddr)
	}
	srv.Stop()
	srv.Stop()
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "term" {
		t.Errorf("fake server did not see SIGTERM: %q, %v", b, err)
	}
}

func TestTemporalDevBinary(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "tools", "devtemporal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tools", "devtemporal", "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "temporal-dev")

	t.Setenv(TemporalDevBinEnv, "")
	t.Chdir(deep)
	_, err := TemporalDevBinary()
	if err == nil || !strings.Contains(err.Error(), "build it with: "+filepath.Join(root, devstack.BuildTemporalDevScript)) {
		t.Fatalf("missing binary error = %v, want the build command", err)
	}

	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := TemporalDevBinary(); err == nil || !strings.Contains(err.Error(), "not an executable file") {
		t.Fatalf("non-executable binary error = %v", err)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := TemporalDevBinary(); err != nil || got != bin {
		t.Fatalf("TemporalDevBinary = %q, %v; want %q", got, err, bin)
	}

	other := filepath.Join(root, "other-temporal-dev")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(TemporalDevBinEnv, other)
	if got, err := TemporalDevBinary(); err != nil || got != other {
		t.Fatalf("with %s: TemporalDevBinary = %q, %v; want %q", TemporalDevBinEnv, got, err, other)
	}
	t.Setenv(TemporalDevBinEnv, filepath.Join(root, "missing"))
	if _, err := TemporalDevBinary(); err == nil || !strings.Contains(err.Error(), TemporalDevBinEnv) {
		t.Fatalf("with a missing %s: error = %v", TemporalDevBinEnv, err)
	}

	t.Chdir(t.TempDir())
	t.Setenv(TemporalDevBinEnv, "")
	if _, err := TemporalDevBinary(); err == nil || !strings.Contains(err.Error(), "no repository root") {
		t.Fatalf("outside the repository: error = %v", err)
	}
}

func TestStopAllRunsInReverseOrder(t *testing.T) {
	// Other tests of this package may have registered servers; keep them.
	stopMu.Lock()
	saved := stops
	stops = nil
	stopMu.Unlock()
	defer func() {
		stopMu.Lock()
		stops = append(saved, stops...)
		stopMu.Unlock()
	}()

	var order []int
	registerStop(func() { order = append(order, 1) })
	registerStop(func() { order = append(order, 2) })
	stopAll()
	stopAll()
	if fmt.Sprint(order) != "[2 1]" {
		t.Errorf("stop order = %v, want [2 1] once", order)
	}
}

// waitForTimer polls the history of workflow id until it records a started
// timer.
func waitForTimer(ctx context.Context, t *testing.T, c client.Client, id string) {
	t.Helper()
	for {
		iter := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatalf("reading history of %s: %v", id, err)
			}
			if ev.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("workflow %s started no timer: %v", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
