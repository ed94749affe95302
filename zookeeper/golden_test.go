package zookeeper

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCompare checks got against testdata/golden/<name>.json, or rewrites
// that file with -update. The file holds the indented form of got.
func goldenCompare(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("indenting output: %v", err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("encoding differs from %s (run go test -update if the change is intended):\ngot:\n%s\nwant:\n%s", path, pretty.Bytes(), want)
	}
}

// checkPreserved verifies that every key of input survives in output with an
// equal JSON value, except the keys the case expects to be normalized.
func checkPreserved(t *testing.T, input, output []byte, normalized ...string) {
	t.Helper()
	var in, out map[string]any
	if err := json.Unmarshal(input, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(output, &out); err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{}
	for _, k := range normalized {
		skip[k] = true
	}
	for k, v := range in {
		got, ok := out[k]
		if !ok {
			t.Errorf("key %q written by the original writer was dropped", k)
			continue
		}
		if !skip[k] && !reflect.DeepEqual(got, v) {
			t.Errorf("key %q changed: got %v, want %v", k, got, v)
		}
	}
}

// Keys Nodepool always writes on a node.
var nodepoolNodeKeys = []string{
	"state", "state_time", "cloud", "provider", "pool", "type", "allocated_to", "az", "region",
	"public_ipv4", "private_ipv4", "public_ipv6", "interface_ip", "connection_port", "ssh_port",
	"image_id", "launcher", "created_time", "external_id", "hostname", "comment", "user_data",
	"hold_job", "host_keys", "username", "connection_type", "python_path", "shell_type",
	"hold_expiration", "resources", "attributes", "tenant_name", "driver_data", "requestor", "slot",
	"host_id",
}

// Keys Nodepool always writes on a request.
var nodepoolRequestKeys = []string{
	"state", "state_time", "declined_by", "node_types", "nodes", "reuse", "requestor",
	"requestor_data", "provider", "relative_priority", "event_id", "created_time", "tenant_name",
}

func checkKeys(t *testing.T, output []byte, keys []string) {
	t.Helper()
	var out map[string]json.RawMessage
	if err := json.Unmarshal(output, &out); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			t.Errorf("key %q missing from output", k)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestGoldenRequests(t *testing.T) {
	tests := []struct {
		name       string
		id         string
		normalized []string
		check      func(t *testing.T, r *NodeRequest)
	}{
		{
			name: "request-zuul-submitted", id: "200-0000000123",
			check: func(t *testing.T, r *NodeRequest) {
				assertEqual(t, "state", r.State, StateRequested)
				assertEqual(t, "node_types", r.NodeTypes, []string{"ubuntu-jammy", "ubuntu-jammy"})
				assertEqual(t, "nodes default", r.Nodes, []string(nil))
				assertEqual(t, "reuse default", r.Reuse, true)
				assertEqual(t, "tenant", r.TenantName, ptr("example"))
				assertEqual(t, "provider", r.Provider, (*string)(nil))
				assertEqual(t, "priority", r.Priority(), "200")
				assertEqual(t, "sequence", r.Sequence(), "0000000123")
			},
		},
		{
			name: "request-fulfilled", id: "200-0000000123",
			check: func(t *testing.T, r *NodeRequest) {
				assertEqual(t, "state", r.State, StateFulfilled)
				assertEqual(t, "nodes", r.Nodes, []string{"0000000456", "0000000457"})
				assertEqual(t, "declined_by", len(r.DeclinedBy), 1)
			},
		},
		{
			name: "request-min-ready", id: "900-0000000200",
			check: func(t *testing.T, r *NodeRequest) {
				assertEqual(t, "reuse", r.Reuse, false)
				assertEqual(t, "requestor", r.Requestor, ptr("NodePool:min-ready"))
				assertEqual(t, "requestor_data", r.RequestorData, json.RawMessage(nil))
				assertEqual(t, "created_time", r.CreatedTime, (*float64)(nil))
			},
		},
		{
			name: "request-zuul-3x", id: "100-0000000007",
			check: func(t *testing.T, r *NodeRequest) {
				assertEqual(t, "provider", r.Provider, ptr("rax-dfw"))
				assertEqual(t, "relative_priority", r.RelativePriority, 12)
				assertEqual(t, "tenant_name", r.TenantName, (*string)(nil))
				assertEqual(t, "reuse default", r.Reuse, true)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join("testdata", tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecodeRequest(tc.id, input)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			assertEqual(t, "id", r.ID, tc.id)
			tc.check(t, r)
			out, err := r.Encode()
			if err != nil {
				t.Fatalf("encoding: %v", err)
			}
			checkPreserved(t, input, out, tc.normalized...)
			checkKeys(t, out, nodepoolRequestKeys)
			goldenCompare(t, tc.name, out)
		})
	}
}

func TestGoldenNodes(t *testing.T) {
	tests := []struct {
		name       string
		id         string
		normalized []string
		check      func(t *testing.T, n *Node)
	}{
		{
			name: "node-aws-ready", id: "0000000456",
			check: func(t *testing.T, n *Node) {
				assertEqual(t, "state", n.State, NodeReady)
				assertEqual(t, "type", n.Type, Labels{"ubuntu-jammy"})
				assertEqual(t, "external id", n.ExternalIDString(), "i-0abc1234def567890")
				assertEqual(t, "resources", n.Resources["L-1216C47A"], 2.0)
				assertEqual(t, "executor zone", n.Attributes["executor-zone"], any("aws"))
				assertEqual(t, "allocated_to", n.AllocatedTo, ptr("200-0000000123"))
				port, ok := n.Port()
				assertEqual(t, "port", port, 22)
				assertEqual(t, "port is int", ok, true)
			},
		},
		{
			// An old record: type as a bare string, no connection_port, no
			// HEAD-era keys. Written back with a type list and every key.
			name: "node-legacy-type", id: "0000000042", normalized: []string{"type"},
			check: func(t *testing.T, n *Node) {
				assertEqual(t, "type", n.Type, Labels{"centos-7"})
				assertEqual(t, "connection_port from ssh_port", string(n.ConnectionPort), "22")
				assertEqual(t, "external id", n.ExternalIDString(), "8f7e6d5c-4b3a-2918-0716-f5e4d3c2b1a0")
				assertEqual(t, "python_path", n.PythonPath, (*string)(nil))
			},
		},
		{
			name: "node-static", id: "0000000100",
			check: func(t *testing.T, n *Node) {
				assertEqual(t, "type", n.Type, Labels{"bare-metal", "bare-metal-large"})
				assertEqual(t, "hostname", n.Hostname, ptr("bm21.example.org"))
				assertEqual(t, "slot", n.Slot, ptr(1))
				assertEqual(t, "ssh_port", n.SSHPort, 2222)
				assertEqual(t, "launcher", n.Launcher, "static driver")
				assertEqual(t, "host_keys", n.HostKeys, []string{})
			},
		},
		{
			// Written back by a Zuul executor: its own keys must survive.
			name: "node-zuul-in-use", id: "0000000456",
			check: func(t *testing.T, n *Node) {
				assertEqual(t, "state", n.State, NodeInUse)
				assertEqual(t, "zuul id kept", string(n.Extra["id"]), `"0000000456"`)
				assertEqual(t, "node_properties kept", string(n.Extra["node_properties"]), `{"spot": false}`)
				assertEqual(t, "user_data", string(n.UserData), `{"zuul_system": "9f0c6f3e2a8b4d1c9e7f5a3b1d2c4e6f", "project_name": "opendev.org/example/project"}`)
			},
		},
		{
			// An autohold with the expiration as a string: coerced to int.
			name: "node-held", id: "0000000460", normalized: []string{"hold_expiration"},
			check: func(t *testing.T, n *Node) {
				assertEqual(t, "state", n.State, NodeHold)
				assertEqual(t, "hold_expiration", n.HoldExpiration, 86400)
				assertEqual(t, "resources ram", n.Resources["ram"], 16384.5)
				assertEqual(t, "attributes number", n.Attributes["weight"], any(json.Number("3")))
				assertEqual(t, "external id", n.ExternalIDString(), "i-0fedcba9876543210")
			},
		},
		{
			// Another writer stored absurd resource amounts: they are read (and
			// written back) within [0, MaxResource], and the changes are noted.
			name: "node-bad-resources", id: "0000000461", normalized: []string{"resources"},
			check: func(t *testing.T, n *Node) {
				assertEqual(t, "resources", n.Resources, map[string]float64{
					"cores": MaxResource, "ram": 0, "instances": 1, "volume-gb": MaxResource, "gpus": 0.5,
				})
				assertEqual(t, "counts", n.ResourceCounts(), map[string]int64{
					"cores": MaxResource, "ram": 0, "instances": 1, "volume-gb": MaxResource, "gpus": 0,
				})
				assertEqual(t, "corrected", n.Corrected, []string{
					"resources.cores: 1e19 is above 1099511627776, read as 1099511627776",
					"resources.ram: -4096 is negative, read as 0",
					"resources.volume-gb: 1e300 is above 1099511627776, read as 1099511627776",
				})
			},
		},
		{
			// Kubernetes connection credentials live in connection_port.
			// ssh_port keeps an int (Nodepool writes the same object there).
			name: "node-k8s-namespace", id: "0000000789", normalized: []string{"ssh_port"},
			check: func(t *testing.T, n *Node) {
				_, ok := n.Port()
				assertEqual(t, "port is not an int", ok, false)
				assertEqual(t, "ssh_port default", n.SSHPort, 22)
				assertEqual(t, "username null", n.Username, (*string)(nil))
				assertEqual(t, "interface_ip null", n.InterfaceIP, "")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input, err := os.ReadFile(filepath.Join("testdata", tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			n, err := DecodeNode(tc.id, input)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			assertEqual(t, "id", n.ID, tc.id)
			tc.check(t, n)
			out, err := n.Encode()
			if err != nil {
				t.Fatalf("encoding: %v", err)
			}
			checkPreserved(t, input, out, tc.normalized...)
			checkKeys(t, out, nodepoolNodeKeys)
			goldenCompare(t, tc.name, out)
		})
	}
}

func TestGoldenPoolComponent(t *testing.T) {
	p := PoolComponent{
		Hostname:        "launcher1.example.org",
		State:           ComponentStateRunning,
		Kind:            ComponentKindPool,
		Version:         "0.1.0",
		ID:              "launcher1.example.org-PoolWorker.aws-us-east-1-main-0a1b2c3d4e5f60718293a4b5c6d7e8f9",
		Name:            "main",
		ProviderName:    "aws-us-east-1",
		SupportedLabels: []string{"ubuntu-jammy", "ubuntu-noble"},
		Priority:        DefaultPoolPriority,
		Path:            "/nodepool/components/pool/launcher1.example.org0000000001",
	}
	out, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	goldenCompare(t, "pool-component", out)
	back, err := DecodePoolComponent(p.Path, out)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "round trip", *back, p)
}

func assertEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %#v, want %#v", what, got, want)
	}
}
