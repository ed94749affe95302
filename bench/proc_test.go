package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLineWatcher(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string // "" when the marker never completes a line
	}{
		{"whole line", []string{"starting\nsimcloud listening on 127.0.0.1:4000\n"}, "simcloud listening on 127.0.0.1:4000"},
		{"split across writes", []string{"simcloud list", "ening on 127.0", ".0.1:4000\nmore\n"}, "simcloud listening on 127.0.0.1:4000"},
		{"incomplete line", []string{"simcloud listening on 127.0.0.1:4000"}, ""},
		{"absent", []string{"a\nb\n"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			w := newLineWatcher(&out, "listening on")
			for _, s := range tc.writes {
				n, err := w.Write([]byte(s))
				require.NoError(t, err)
				assert.Equal(t, len(s), n)
			}
			assert.Equal(t, strings.Join(tc.writes, ""), out.String(), "output is copied unchanged")
			select {
			case line := <-w.ready:
				assert.Equal(t, tc.want, line)
			default:
				assert.Empty(t, tc.want, "marker line not reported")
			}
		})
	}
}

func TestField(t *testing.T) {
	tests := []struct {
		line, key, want string
		wantErr         bool
	}{
		{"temporal-dev ready grpc=127.0.0.1:41234 ui=none", "grpc=", "127.0.0.1:41234", false},
		{"temporal-dev ready ui=x", "grpc=", "", true},
		{"temporal-dev ready grpc=", "grpc=", "", true},
	}
	for _, tc := range tests {
		got, err := field(tc.line, tc.key)
		if tc.wantErr {
			assert.Error(t, err, tc.line)
			continue
		}
		require.NoError(t, err, tc.line)
		assert.Equal(t, tc.want, got)
	}
}

func TestLastLines(t *testing.T) {
	assert.Equal(t, "    c\n    d", lastLines("a\nb\nc\nd\n", 2))
	assert.Equal(t, "    a", lastLines("a", 5))
}

// A started process reports its marker, and stop ends it.
func TestProcLifecycle(t *testing.T) {
	dir := t.TempDir()
	p, err := startProc("sleeper", dir, nil, "ready", "/bin/sh", "-c", "echo starting; echo ready now; exec sleep 60")
	require.NoError(t, err)
	line, err := p.waitReady(context.Background(), 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "ready now", line)
	assert.False(t, p.exited())
	require.NoError(t, p.stop(slog.New(slog.NewTextHandler(io.Discard, nil))))
	assert.True(t, p.exited())
	assert.Contains(t, p.tail(5), "ready now")
}

// A process that exits before its marker is reported with its log.
func TestProcExitsEarly(t *testing.T) {
	p, err := startProc("failing", t.TempDir(), nil, "ready", "/bin/sh", "-c", "echo boom >&2; exit 3")
	require.NoError(t, err)
	_, err = p.waitReady(context.Background(), 10*time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited during start")
	assert.Contains(t, err.Error(), "boom")
	assert.Error(t, p.stop(slog.New(slog.NewTextHandler(io.Discard, nil))), "exit status 3 is reported")
}
