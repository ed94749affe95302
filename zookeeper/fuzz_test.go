package zookeeper

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSeeds adds the testdata records whose names start with prefix plus
// hand-picked edge cases.
func fuzzSeeds(f *testing.F, prefix string, extra ...string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", prefix+"*.json"))
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatalf("no testdata/%s*.json seeds", prefix)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range append([]string{
		``, `null`, `[]`, `{}`, `"x"`, `{"state": "\u003c\u0026\u003e"}`,
		"{\"state\": \"\xff\xfe\"}", `{"x": "\ud800"}`, `{"a": 1, "a": 2}`,
		`{"nested": {"deep": [[[[[]]]]]}}`, `{"n": 1e400}`, `{"n": -0}`,
	}, extra...) {
		f.Add([]byte(s))
	}
}

// roundTrip checks the decode/encode contract: decoding never panics, fails
// only with a *DecodeError, and once decoded a record re-encodes to a
// fixed point.
func roundTrip(t *testing.T, data []byte, decode func([]byte) (interface{ Encode() ([]byte, error) }, error)) {
	rec, err := decode(data)
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("decode error %v is not a *DecodeError", err)
		}
		return
	}
	first, err := rec.Encode()
	if err != nil {
		t.Fatalf("encoding a decoded record: %v", err)
	}
	again, err := decode(first)
	if err != nil {
		t.Fatalf("decoding our own encoding %s: %v", first, err)
	}
	second, err := again.Encode()
	if err != nil {
		t.Fatalf("re-encoding: %v", err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("encoding is not stable:\nfirst:  %s\nsecond: %s", first, second)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	fuzzSeeds(f, "request-",
		`{"reuse": null, "nodes": null, "declined_by": null}`,
		`{"relative_priority": 1.5e3, "state_time": 0}`,
		`{"requestor_data": "opaque", "created_time": 0}`,
		`{"node_types": "not-a-list"}`,
		`{"relative_priority": 99999999999999999999999}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, func(b []byte) (interface{ Encode() ([]byte, error) }, error) {
			return DecodeRequest("100-0000000001", b)
		})
	})
}

func FuzzDecodeNode(f *testing.F) {
	fuzzSeeds(f, "node-",
		`{"type": "legacy"}`,
		`{"hold_expiration": "12"}`,
		`{"hold_expiration": "junk", "connection_port": {"token": "t"}}`,
		`{"ssh_port": "22"}`,
		`{"connection_port": 1.5}`,
		`{"resources": {"cores": 1e308}, "attributes": {"n": 12345678901234567890}}`,
		`{"username": null, "host_keys": null, "slot": 2.7}`,
		`{"external_id": {"instance": 5}}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, func(b []byte) (interface{ Encode() ([]byte, error) }, error) {
			return DecodeNode("0000000001", b)
		})
	})
}

func FuzzDecodePoolComponent(f *testing.F) {
	fuzzSeeds(f, "golden/pool-",
		`{"priority": null, "paused": null}`,
		`{"supported_labels": null, "model_api": 1.9}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, func(b []byte) (interface{ Encode() ([]byte, error) }, error) {
			return DecodePoolComponent(PoolComponentsPath+"/x0000000001", b)
		})
	})
}

// The fuzz seeds above include every testdata record; make sure the glob
// patterns keep matching them.
func TestFuzzSeedsCoverTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if !strings.HasPrefix(base, "request-") && !strings.HasPrefix(base, "node-") {
			t.Errorf("testdata/%s is not picked up by any fuzz target", base)
		}
	}
}
