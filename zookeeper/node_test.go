package zookeeper

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestNodeHoldExpirationCoercion(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  int
	}{
		{"absent", ``, 0},
		{"null", `null`, 0},
		{"int", `3600`, 3600},
		{"float truncated", `3600.9`, 3600},
		{"numeric string", `"86400"`, 86400},
		{"padded numeric string", `" 60 "`, 60},
		{"junk string", `"tomorrow"`, 0},
		{"float string is junk for int()", `"1.5"`, 0},
		{"bool true", `true`, 1},
		{"list", `[1]`, 0},
		{"object", `{"s": 1}`, 0},
		{"negative", `-5`, -5},
		{"huge", `1e300`, int(^uint(0) >> 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input := `{"state": "hold"}`
			if tc.value != "" {
				input = `{"state": "hold", "hold_expiration": ` + tc.value + `}`
			}
			n, err := DecodeNode("0000000001", []byte(input))
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			assertEqual(t, "hold_expiration", n.HoldExpiration, tc.want)
		})
	}
}

func TestNodeConnectionPort(t *testing.T) {
	tests := []struct {
		name        string
		input       string
		wantPort    string
		wantSSHPort int
		wantWritten string // ssh_port as written back
	}{
		{"default", `{}`, `22`, 22, `22`},
		{"connection_port", `{"connection_port": 2022}`, `2022`, 2022, `2022`},
		{"ssh_port fallback", `{"ssh_port": 2200}`, `2200`, 2200, `2200`},
		{"connection_port wins", `{"connection_port": 5986, "ssh_port": 22}`, `5986`, 5986, `5986`},
		{"null connection_port falls back", `{"connection_port": null, "ssh_port": 2201}`, `2201`, 2201, `2201`},
		{"object", `{"connection_port": {"token": "t"}, "ssh_port": {"token": "t"}}`, `{"token": "t"}`, 22, `22`},
		{"object with int ssh_port", `{"connection_port": {"token": "t"}, "ssh_port": 2022}`, `{"token": "t"}`, 2022, `2022`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := DecodeNode("0000000001", []byte(tc.input))
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			assertEqual(t, "connection_port", string(n.ConnectionPort), tc.wantPort)
			assertEqual(t, "ssh port", n.SSHPort, tc.wantSSHPort)
			out, err := n.Encode()
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "ssh_port written", string(m["ssh_port"]), tc.wantWritten)
		})
	}
}

func TestNodeSetPortMirrorsSSHPort(t *testing.T) {
	n := &Node{}
	n.SetPort(5986)
	out, err := n.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "connection_port", string(m["connection_port"]), "5986")
	assertEqual(t, "ssh_port", string(m["ssh_port"]), "5986")
}

func TestNodeTypeForms(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    Labels
		wantErr bool
	}{
		{"list", `["a", "b"]`, Labels{"a", "b"}, false},
		{"legacy string", `"a"`, Labels{"a"}, false},
		{"null", `null`, nil, false},
		{"number", `7`, nil, true},
		{"list with number", `["a", 7]`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := DecodeNode("0000000001", []byte(`{"type": `+tc.value+`}`))
			if tc.wantErr {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("got %v, want a *DecodeError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "type", n.Type, tc.want)
			out, err := n.Encode()
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatal(err)
			}
			var list []string
			if err := json.Unmarshal(m["type"], &list); err != nil || list == nil {
				t.Fatalf("type written as %s, want a list", m["type"])
			}
		})
	}
}

func TestNodeExternalIDString(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"unset", ``, ""},
		{"null", `null`, ""},
		{"string", `"i-123"`, "i-123"},
		{"aws object", `{"instance": "i-123", "host": "h-9"}`, "i-123"},
		{"object without instance", `{"fleet": "fleet-1"}`, `{"fleet":"fleet-1"}`},
		{"number", `42`, "42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{ExternalID: json.RawMessage(tc.raw)}
			assertEqual(t, "external id", n.ExternalIDString(), tc.want)
		})
	}
	n := &Node{}
	n.SetExternalID("i-0abc")
	assertEqual(t, "set", string(n.ExternalID), `"i-0abc"`)
}

func TestNodeDefaultsAndNulls(t *testing.T) {
	n, err := DecodeNode("0000000001", []byte(`{"state": "building", "username": null}`))
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "explicit null username", n.Username, (*string)(nil))
	n, err = DecodeNode("0000000001", []byte(`{"state": "building"}`))
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "absent username", n.Username, ptr("zuul"))

	out, err := (&Node{State: NodeInit}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"host_keys": `[]`, "type": `[]`, "provider": `null`, "interface_ip": `null`,
		"hold_expiration": `null`, "resources": `null`, "attributes": `null`, "connection_port": `22`,
		"ssh_port": `22`, "state_time": `null`, "user_data": `null`, "external_id": `null`,
	} {
		assertEqual(t, key, string(m[key]), want)
	}
	for _, key := range nodepoolNodeKeys {
		if _, ok := m[key]; !ok {
			t.Errorf("key %q missing", key)
		}
	}
}

func TestDecodeNodeErrors(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		wantEmpty bool
	}{
		{"empty znode", ``, true},
		{"not an object", `"ready"`, false},
		{"host_keys null is fine but a string is not", `{"host_keys": "ssh-rsa AAA"}`, false},
		{"resources with a string", `{"resources": {"cores": "two"}}`, false},
		{"attributes a list", `{"attributes": ["a"]}`, false},
		{"slot a string", `{"slot": "1"}`, false},
		{"allocated_to a number", `{"allocated_to": 100}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeNode("0000000007", []byte(tc.input))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DecodeError", err)
			}
			assertEqual(t, "path", de.Path, "/nodepool/nodes/0000000007")
			assertEqual(t, "empty", errors.Is(err, ErrEmptyRecord), tc.wantEmpty)
		})
	}
}

func TestNodeResourcesKeepIntegers(t *testing.T) {
	n := &Node{Resources: map[string]float64{"cores": 4, "ram": 16384, "volume-gb": 0.5}}
	out, err := n.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "resources", string(m["resources"]), `{"cores":4,"ram":16384,"volume-gb":0.5}`)
}

func TestDecodePoolComponent(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    PoolComponent
		wantErr bool
	}{
		{
			name:  "nodepool registration",
			input: `{"hostname": "nl1", "id": "nl1-PoolWorker.p-main-ab", "kind": "pool", "model_api": 0, "name": "main", "paused": true, "priority": 50, "provider_name": "p", "state": "running", "supported_labels": ["a"], "version": "10.0.0"}`,
			want:  PoolComponent{Hostname: "nl1", ID: "nl1-PoolWorker.p-main-ab", Kind: "pool", Name: "main", Paused: true, Priority: 50, ProviderName: "p", State: "running", SupportedLabels: []string{"a"}, Version: "10.0.0", Path: "/p"},
		},
		{
			name:  "fresh registration with nulls",
			input: `{"hostname": "nl1", "id": null, "kind": "pool", "model_api": 0, "name": null, "paused": false, "priority": 100, "provider_name": null, "state": "initializing", "supported_labels": [], "version": null}`,
			want:  PoolComponent{Hostname: "nl1", Kind: "pool", Priority: 100, State: "initializing", SupportedLabels: []string{}, Path: "/p"},
		},
		{
			name:  "priority defaults to 100",
			input: `{"id": "x"}`,
			want:  PoolComponent{ID: "x", Priority: DefaultPoolPriority, Path: "/p"},
		},
		{name: "labels not a list", input: `{"supported_labels": "a"}`, wantErr: true},
		{name: "garbage", input: `{{`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePoolComponent("/p", []byte(tc.input))
			if tc.wantErr {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("got %v, want a *DecodeError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, "component", *got, tc.want)
		})
	}
}
