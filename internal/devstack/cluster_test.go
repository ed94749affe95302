package devstack

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestTemporalServiceArgs(t *testing.T) {
	pg := &Postgres{Host: "127.0.0.1", Port: 5433, User: PostgresUser}
	ports := map[string]TemporalServicePorts{
		"frontend": {7233, 16933}, "history": {7234, 16934}, "matching": {7235, 16935}, "worker": {7239, 16939},
	}
	common := "--ip 127.0.0.1 --pg-host 127.0.0.1 --pg-port 5433 --pg-user temporal --db temporal --visibility-db temporal_visibility " +
		"--shards 4 --log-level warn --frontend-http-port 7243 " +
		"--frontend-port 7233 --frontend-membership-port 16933 --history-port 7234 --history-membership-port 16934 " +
		"--matching-port 7235 --matching-membership-port 16935 --worker-port 7239 --worker-membership-port 16939"
	tests := []struct {
		service string
		uiPort  int
		extra   []string
		want    string
	}{
		{"frontend", 8233, nil, "service --service frontend " + common + " --ui-port 8233"},
		{"frontend", -1, nil, "service --service frontend " + common},
		{"history", 8233, nil, "service --service history " + common},
		{"worker", 0, []string{"k=v"}, "service --service worker " + common + " --namespace ci --dynamic-config-value k=v"},
	}
	for _, tt := range tests {
		t.Run(tt.service+strconv.Itoa(tt.uiPort), func(t *testing.T) {
			var ns []string
			if tt.extra != nil {
				ns = []string{"ci"}
			}
			got := strings.Join(TemporalServiceArgs(tt.service, pg, ports, 7243, tt.uiPort, 4, ns, tt.extra, ""), " ")
			if got != tt.want {
				t.Errorf("args:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFreeMembershipPort(t *testing.T) {
	for range 20 {
		p, err := FreeMembershipPort()
		if err != nil {
			t.Fatal(err)
		}
		if p < 10000 || p > MaxMembershipPort {
			t.Fatalf("port %d outside [10000, %d]", p, MaxMembershipPort)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		_ = l.Close()
	}
}

func TestAllowTraverse(t *testing.T) {
	tests := []struct {
		name string
		// modes of the grandparent, parent and directory, created in that order.
		modes   [3]os.FileMode
		wantErr bool
	}{
		{"private stack directory is opened", [3]os.FileMode{0o755, 0o700, 0o700}, false},
		{"open path left alone", [3]os.FileMode{0o755, 0o755, 0o755}, false},
		{"private ancestor above the stack is an error", [3]os.FileMode{0o700, 0o700, 0o700}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not t.TempDir: its parent directory is private.
			base, err := os.MkdirTemp("", "allow-traverse-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(base) })
			if err := os.Chmod(base, 0o755); err != nil {
				t.Fatal(err)
			}
			grand := filepath.Join(base, "a")
			parent := filepath.Join(grand, "b")
			dir := filepath.Join(parent, "c")
			for i, d := range []string{grand, parent, dir} {
				if err := os.Mkdir(d, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(d, tt.modes[i]); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { _ = os.Chmod(grand, 0o755) })
			err = allowTraverse(dir)
			if (err != nil) != tt.wantErr {
				t.Fatalf("allowTraverse = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			for _, d := range []string{parent, dir} {
				fi, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm()&0o001 == 0 {
					t.Errorf("%s is %v: others cannot enter it", d, fi.Mode().Perm())
				}
			}
		})
	}
}

func TestClusterNames(t *testing.T) {
	for got, want := range map[string]string{
		ClusterZooKeeperName(2): "zookeeper-2",
		ClusterPollerName(1):    "poller-1",
		ClusterWorkerName(3):    "worker-3",
	} {
		if got != want {
			t.Errorf("name %q, want %q", got, want)
		}
	}
}
