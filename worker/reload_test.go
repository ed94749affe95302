package worker

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
)

const reloadGood = `zookeeper-servers:
  - host: 127.0.0.1
labels:
  - name: small
providers:
  - name: sim
    driver: sim
    flavors: [{name: f, cores: 1, ram: 512}]
    cloud-images: [{name: img}]
    pools:
      - name: main
        max-servers: %d
        labels:
          - {name: small, flavor: f, cloud-image: img}
`

func TestWatchConfigAppliesValidChangesOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodepool.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(reloadGood, "%d", "2", 1))
	sum := fingerprint(path, "")
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type result struct {
		r  reloaded
		ok bool
	}
	done := make(chan result, 1)
	go func() {
		r, ok := watchConfig(ctx, path, "", sum, 50*time.Millisecond, logger)
		done <- result{r, ok}
	}()

	// A broken file is refused with its problems logged, and nothing is applied.
	write(strings.Replace(reloadGood, "max-servers: %d", "max-servers: many", 1))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "refusing the changed configuration") {
		if time.Now().After(deadline) {
			t.Fatalf("the invalid configuration was not refused; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "max-servers") {
		t.Fatalf("the problem is not named; logs:\n%s", logs.String())
	}
	select {
	case r := <-done:
		t.Fatalf("an invalid configuration was applied: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}

	// A valid change is applied.
	write(strings.Replace(reloadGood, "%d", "7", 1))
	r := <-done
	if !r.ok {
		t.Fatal("the valid change was not applied")
	}
	if got := r.r.cfg.Providers[0].Pools[0].MaxServers; got == nil || *got != 7 {
		t.Fatalf("reloaded max-servers = %v, want 7", got)
	}
}
