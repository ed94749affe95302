package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("zookeeper-servers:\n  - host: 127.0.0.1\nlabels:\n  - name: a\n  - name: a\nproviders:\n  - name: p\n    driver: nope\n    pools: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"version", []string{"--version"}, 0, []string{"nodepool-launcher"}},
		{"unknown flag", []string{"--bogus"}, 2, []string{"flag provided but not defined"}},
		{"bad log level", []string{"--log-level", "loud", "-c", bad}, 2, []string{"bad log level"}},
		{"missing file", []string{"-c", filepath.Join(dir, "none.yaml")}, 1, []string{"refusing to start", "none.yaml"}},
		{"bad file lists every problem", []string{"-c", bad}, 1, []string{
			"refusing to start", "bad.yaml:5", "duplicate", `unknown driver "nope"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut.String())
			}
			text := out.String() + errOut.String()
			for _, c := range tc.contains {
				if !strings.Contains(text, c) {
					t.Errorf("output lacks %q:\n%s", c, text)
				}
			}
		})
	}
}
