package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// cliIn runs a subcommand against the environment's configuration with stdin.
func (e *env) cliIn(stdin string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut strings.Builder
	code := runIO(ctx, append([]string{"-c", e.cfg}, args...), strings.NewReader(stdin), &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// cliRaw runs the command with exactly args (no -c added).
func (e *env) cliRaw(args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return runCLI(ctx, args...)
}

func TestGlobalFlagsInEitherPosition(t *testing.T) {
	e := newEnv(t)
	id := e.createNode(readyNode("small"))
	tests := []struct {
		name string
		args []string
		// check inspects a successful run.
		check func(t *testing.T, r result)
	}{
		{"config before the command", []string{"-c", e.cfg, "config-validate"}, func(t *testing.T, r result) {
			assert.Equal(t, "Configuration is valid\n", r.stdout)
		}},
		{"config after the command", []string{"config-validate", "-c", e.cfg}, func(t *testing.T, r result) {
			assert.Equal(t, "Configuration is valid\n", r.stdout)
		}},
		{"config with =, double dash", []string{"config-validate", "--c=" + e.cfg}, func(t *testing.T, r result) {
			assert.Equal(t, "Configuration is valid\n", r.stdout)
		}},
		{"json before the command", []string{"--json", "-c", e.cfg, "list"}, func(t *testing.T, r result) {
			assert.True(t, json.Valid([]byte(r.stdout)), r.stdout)
		}},
		{"json and config after the command", []string{"list", "--json", "-c", e.cfg}, func(t *testing.T, r result) {
			assert.True(t, json.Valid([]byte(r.stdout)), r.stdout)
		}},
		{"between the positional arguments", []string{"hold", id, "-c", e.cfg, "--reason", "x", "--debug"}, func(t *testing.T, r result) {
			assert.Equal(t, "x", strCell(e.node(id).Comment))
		}},
		{"secure file after the command", []string{"config-validate", "-c", e.cfg, "-s", "/nonexistent/secure.conf"}, nil},
		{"log config accepted", []string{"list", "-l", "/etc/nodepool/logging.conf", "-c", e.cfg}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.cliRaw(tc.args...)
			if tc.check == nil {
				// The secure file does not exist: the loader must have been given it.
				if strings.Contains(strings.Join(tc.args, " "), "secure") {
					assert.Equal(t, 1, r.code)
					assert.Contains(t, r.stderr, "/nonexistent/secure.conf")
					return
				}
				assert.Equal(t, 0, r.code, r.stderr)
				return
			}
			require.Equal(t, 0, r.code, r.stderr)
			tc.check(t, r)
		})
	}
}

func TestCommandHelpShowsOwnOptions(t *testing.T) {
	r := runCLI(ctxT(t), "hold", "-h")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "usage: nodepool hold ID")
	assert.Contains(t, r.stderr, "-hold-expiration")
	assert.Contains(t, r.stderr, "-reason")
	assert.NotContains(t, r.stderr, "  -debug", "global options are described by the program's help")
	assert.Contains(t, r.stderr, "may also follow the command")
}

func TestListJSON(t *testing.T) {
	e := newEnv(t)
	ready := readyNode("small")
	ready.StateTime = float64(time.Now().Add(-26*time.Hour).Unix()) - 5
	readyID := e.createNode(ready)
	secret := readyNode("large")
	secret.ConnectionPort = json.RawMessage(`{"token": "secret"}`)
	secret.ExternalID = json.RawMessage(`{"instance": "i-1"}`)
	secret.UserData = json.RawMessage(`{"zuul_system": "z"}`)
	secretID := e.createNode(secret)
	e.createRaw(zookeeper.NodePath("0000099998"), []byte(`{"state": 5`))

	for _, args := range [][]string{{"list", "--json"}, {"list", "--detail", "--json"}} {
		r := e.cli(args...)
		require.Equal(t, 0, r.code, r.stderr)
		var got []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		require.Len(t, got, 3)

		keys := []string{"id", "provider", "label", "server_id", "public_ipv4", "ipv6", "state", "age", "locked",
			"pool", "hostname", "private_ipv4", "AZ", "username", "connection_port", "launcher", "allocated_to",
			"hold_job", "comment", "user_data", "driver_data"}
		for _, obj := range got {
			for _, k := range keys {
				assert.Contains(t, obj, k, "every upstream key is present")
			}
			assert.Len(t, obj, len(keys))
		}
		assert.Equal(t, readyID, got[0]["id"])
		assert.Equal(t, []any{"small"}, got[0]["label"])
		assert.Equal(t, "sim-small", got[0]["server_id"])
		assert.Equal(t, float64(22), got[0]["connection_port"])
		assert.Equal(t, "unlocked", got[0]["locked"])
		assert.Regexp(t, `^01:02:00:0\d$`, got[0]["age"])
		assert.Nil(t, got[0]["ipv6"])

		assert.Equal(t, secretID, got[1]["id"])
		assert.Equal(t, "redacted", got[1]["connection_port"], "credentials never leave the cluster")
		assert.Equal(t, map[string]any{"instance": "i-1"}, got[1]["server_id"])
		assert.Equal(t, map[string]any{"zuul_system": "z"}, got[1]["user_data"])

		assert.Equal(t, "0000099998", got[2]["id"])
		assert.Equal(t, "malformed", got[2]["state"])
		assert.Equal(t, []any{}, got[2]["label"])
	}

	r := e.cli("list", "--json")
	assert.NotContains(t, r.stdout, "secret")
}

func TestRequestListJSON(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	id, err := e.zk.SubmitRequest(ctx, &zookeeper.NodeRequest{State: zookeeper.StateRequested, NodeTypes: []string{"small"},
		Requestor: ptr("zuul-1"), EventID: ptr("ev-1"), RelativePriority: 3, Reuse: true}, "200", false)
	require.NoError(t, err)
	e.createRaw(zookeeper.RequestPath("300-0000009999"), []byte("not json"))

	r := e.cli("request-list", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, fmt.Sprintf(`[
		{"id": %q, "relative_priority": 3, "state": "requested", "requestor": "zuul-1", "node_types": ["small"],
		 "nodes": [], "declined_by": [], "event_id": "ev-1"},
		{"id": "300-0000009999", "relative_priority": null, "state": "malformed", "requestor": null, "node_types": [],
		 "nodes": [], "declined_by": [], "event_id": null}
	]`, id), r.stdout)
}

// registerPool registers a pool component for the test's lifetime.
func (e *env) registerPool(id, provider, pool string, labels ...string) {
	e.t.Helper()
	_, err := e.zk.RegisterPool(ctxT(e.t), zookeeper.PoolComponent{
		Hostname: "host", ID: id, Name: pool, ProviderName: provider, SupportedLabels: labels,
		Priority: zookeeper.DefaultPoolPriority,
	})
	require.NoError(e.t, err)
}

func TestLabelList(t *testing.T) {
	e := newEnv(t)
	r := e.cli("label-list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"Label"}, tableHeader(r.stdout))
	assert.Empty(t, tableRows(r.stdout))

	e.registerPool("a-PoolWorker.sim-one-main", "sim-one", "main", "small", "large")
	e.registerPool("b-PoolWorker.other-main", "other", "main", "large", "arm")

	r = e.cli("label-list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, [][]string{{"arm"}, {"large"}, {"small"}}, tableRows(r.stdout))

	r = e.cli("label-list", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `[{"label": "arm"}, {"label": "large"}, {"label": "small"}]`, r.stdout)
}

func TestImageList(t *testing.T) {
	e := newEnv(t)
	r := e.cli("image-list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, imageColumns, tableHeader(r.stdout))
	assert.Empty(t, tableRows(r.stdout), "this launcher builds no images")
	r = e.cli("image-list", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `[]`, r.stdout)

	// An upstream builder sharing the ZooKeeper: its uploads are listed.
	st := time.Now().Add(-time.Hour).Unix()
	e.createRaw("/nodepool/images/debian/builds/0000000001/providers/sim-one/images/0000000002",
		[]byte(fmt.Sprintf(`{"external_name": "debian-1", "external_id": "ami-1", "state": "ready", "state_time": %d}`, st)))
	e.createRaw("/nodepool/images/debian/builds/0000000001/providers/sim-one/images/lock", nil)
	r = e.cli("image-list")
	require.Equal(t, 0, r.code, r.stderr)
	rows := tableRows(r.stdout)
	require.Len(t, rows, 1, r.stdout)
	assert.Equal(t, []string{"0000000001", "0000000002", "sim-one", "debian", "debian-1", "ami-1", "ready"}, rows[0][:7])
	assert.Regexp(t, `^00:01:00:0\d$`, rows[0][7])
	r = e.cli("image-list", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, fmt.Sprintf(`[{"id": "0000000001", "upload_id": "0000000002", "provider": "sim-one", "image": "debian",
		"external_name": "debian-1", "external_id": "ami-1", "state": "ready", "age": %d}]`, st), r.stdout)
}

func TestHoldWithExpiry(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name        string
		args        []string
		wantCode    int
		wantComment string
		wantExpiry  int
	}{
		{"reason and hold-expiration", []string{"--reason", "debugging", "--hold-expiration", "3600"}, 0, "debugging", 3600},
		{"comment and expiry", []string{"--comment", "other words", "--expiry", "60"}, 0, "other words", 60},
		{"expiry only keeps the comment", []string{"--expiry=120"}, 0, "", 120},
		{"negative expiry", []string{"--expiry", "-1"}, 2, "", 0},
		{"expiry not a number", []string{"--expiry", "soon"}, 2, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := e.createNode(readyNode("small"))
			r := e.cli(append([]string{"hold", id}, tc.args...)...)
			require.Equal(t, tc.wantCode, r.code, r.stderr)
			n := e.node(id)
			if tc.wantCode != 0 {
				assert.Equal(t, zookeeper.NodeReady, n.State)
				return
			}
			assert.Equal(t, zookeeper.NodeHold, n.State)
			assert.Equal(t, tc.wantComment, strCell(n.Comment))
			assert.Equal(t, tc.wantExpiry, n.HoldExpiration)
			assert.False(t, e.locked(id))
		})
	}

	id := e.createNode(readyNode("small"))
	r := e.cli("hold", id, "--json", "--reason", "x")
	require.Equal(t, 0, r.code, r.stderr)
	var got []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	require.Len(t, got, 1)
	assert.Equal(t, "hold", got[0]["state"])
	assert.Equal(t, "x", got[0]["comment"])
}

func TestDeleteNowProgressAndUnknownProvider(t *testing.T) {
	e := newEnv(t)
	oldPoll, oldEvery := progressPoll, progressEvery
	progressPoll, progressEvery = 50*time.Millisecond, 100*time.Millisecond
	t.Cleanup(func() { progressPoll, progressEvery = oldPoll, oldEvery })

	// A node of a provider this launcher does not have: nobody here could delete
	// its instance, so --now refuses, as upstream does.
	other := readyNode("small")
	other.Provider = "elsewhere"
	otherID := e.createNode(other)
	r := e.cli("delete", otherID, "--now")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "Provider elsewhere for node "+otherID+" not defined on this launcher")
	assert.Equal(t, zookeeper.NodeReady, e.node(otherID).State)

	r = e.cli("delete", "0000054321", "--now")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "Node id 0000054321 not found")

	// The deletion takes a while: the launcher locks the node, then removes it.
	id := e.createNode(readyNode("small"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			n, err := e.zk.GetNode(ctx, id)
			if err == nil && n.State == zookeeper.NodeDeleting {
				lock := e.zk.NewLock(zookeeper.NodeLockPath(id), "")
				if ok, _ := lock.TryAcquire(ctx); ok {
					time.Sleep(400 * time.Millisecond)
					_ = e.zk.DeleteNode(ctx, id)
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	r = e.cli("delete", "--now", id)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Node "+id+" deleted")
	assert.Contains(t, r.stderr, "node "+id+" is deleting, locked (")
	assert.Regexp(t, `node `+id+` deleted after \d`, r.stderr)
}

func TestErase(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		stdin     string
		wantCode  int
		wantErase bool
		wantOut   string
	}{
		{"configured provider is refused", []string{"erase", "sim-one", "--force"}, "", 1, false, ""},
		{"answer no", []string{"erase", "gone"}, "n\n", 0, false, "Aborting. No data erased."},
		{"no answer", []string{"erase", "gone"}, "", 0, false, "Aborting. No data erased."},
		{"answer yes", []string{"erase", "gone"}, "y\n", 0, true, "Erasing node data for gone..."},
		{"force", []string{"erase", "--force", "gone"}, "", 0, true, "Erasing build data for gone..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var gone []string
			for range 3 {
				n := readyNode("small")
				n.Provider = "gone"
				gone = append(gone, e.createNode(n))
			}
			// A locked node of the provider goes too, as upstream erases it.
			lock := e.zk.NewLock(zookeeper.NodeLockPath(gone[0]), "")
			ok, err := lock.TryAcquire(ctxT(t))
			require.NoError(t, err)
			require.True(t, ok)
			kept := e.createNode(readyNode("small"))
			e.createRaw("/nodepool/images/debian/builds/0000000001/providers/gone/images/0000000001", []byte("{}"))
			e.createRaw("/nodepool/images/debian/builds/0000000001/providers/sim-one/images/0000000002", []byte("{}"))

			r := e.cliIn(tc.stdin, tc.args...)
			require.Equal(t, tc.wantCode, r.code, r.stderr)
			assert.Contains(t, r.stdout, tc.wantOut)
			ids, err := e.zk.ListNodes(ctxT(t))
			require.NoError(t, err)
			uploads, err := e.zk.Children(ctxT(t), "/nodepool/images/debian/builds/0000000001/providers")
			require.NoError(t, err)
			if tc.wantErase {
				assert.Equal(t, []string{kept}, ids)
				assert.Equal(t, []string{"sim-one"}, uploads)
				assert.Contains(t, r.stderr, "erased 3/3 node records")
			} else {
				assert.ElementsMatch(t, append([]string{kept}, gone...), ids)
				assert.Equal(t, []string{"gone", "sim-one"}, uploads)
			}
			if tc.wantCode == 1 {
				assert.Contains(t, r.stderr, "provider sim-one is in "+e.cfg)
			}
			if tc.stdin != "" || tc.wantOut == "Aborting. No data erased." {
				assert.Contains(t, r.stdout, "Provider gone has 3 node record(s) and uploads of 1 image build(s)")
				assert.Contains(t, r.stdout, "Erase ZooKeeper data for provider gone? [N/y]")
			}
		})
	}
}

func TestInfoJSON(t *testing.T) {
	e := newEnv(t)
	mine := e.createNode(readyNode("small"))
	e.createRaw("/nodepool/images/debian/builds/0000000001/providers/sim-one/images/0000000001", []byte("{}"))
	r := e.cli("info", "sim-one", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, fmt.Sprintf(`{"provider": "sim-one",
		"image_data": [{"image": "debian", "build_id": "0000000001", "upload_ids": ["0000000001"]}],
		"nodes": [{"id": %q, "server_id": "sim-small"}]}`, mine), r.stdout)
}

func TestConfigValidateJSON(t *testing.T) {
	good := writeFile(t, "good.yaml", fmt.Sprintf(simConfig, "127.0.0.1", "2181", "/nodepool"))
	bad := writeFile(t, "bad.yaml", "labels:\n  - name: small\nproviders: 5\n")
	r := runCLI(ctxT(t), "config-validate", "--json", "-c", good)
	assert.Equal(t, 0, r.code, r.stderr)
	assert.JSONEq(t, `{"valid": true, "problems": []}`, r.stdout)

	r = runCLI(ctxT(t), "config-validate", "--json", "-c", bad)
	assert.Equal(t, 1, r.code)
	var got struct {
		Valid    bool     `json:"valid"`
		Problems []string `json:"problems"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	assert.False(t, got.Valid)
	require.NotEmpty(t, got.Problems)
	assert.Contains(t, got.Problems[0], bad)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
