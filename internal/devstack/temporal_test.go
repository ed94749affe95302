package devstack

import (
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestTemporalOptionsArgs(t *testing.T) {
	tests := []struct {
		name string
		opts TemporalOptions
		want string
	}{
		{
			name: "zero value",
			want: "--ip 127.0.0.1 --port 0 --log-level warn --headless",
		},
		{
			name: "everything",
			opts: TemporalOptions{
				IP: "0.0.0.0", Port: 7233, UI: true, UIPort: 9000, DBFile: "/tmp/t.db", Shards: 4,
				Namespaces:       []string{"a", "b"},
				SearchAttributes: map[string]string{"Zed": "Int", "Alpha": "Keyword"},
				DynamicConfig:    []string{"k=1"},
				LogLevel:         "error", ExtraArgs: []string{"--x"},
			},
			want: "--ip 0.0.0.0 --port 7233 --log-level error --ui-port 9000 --db /tmp/t.db --shards 4 --namespace a --namespace b " +
				"--search-attribute Alpha=Keyword --search-attribute Zed=Int --dynamic-config-value k=1 --x",
		},
		{
			name: "ui on default port",
			opts: TemporalOptions{UI: true},
			want: "--ip 127.0.0.1 --port 0 --log-level warn",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.opts.Args(), " "); got != tt.want {
				t.Errorf("Args() = %q\nwant     %q", got, tt.want)
			}
		})
	}
}

func TestParseReadyLine(t *testing.T) {
	tests := []struct {
		line    string
		want    readyLine
		wantErr string
	}{
		{line: "temporal-dev ready grpc=127.0.0.1:7233 ui=http://127.0.0.1:8233", want: readyLine{grpc: "127.0.0.1:7233", ui: "127.0.0.1:8233"}},
		{line: "temporal-dev ready grpc=127.0.0.1:40001 ui=none", want: readyLine{grpc: "127.0.0.1:40001"}},
		{line: "temporal-dev ready grpc=[::1]:7233 ui=http://[::1]:8233/ extra=1", want: readyLine{grpc: "[::1]:7233", ui: "[::1]:8233"}},
		{line: "temporal-dev ready ui=none", wantErr: "no grpc address"},
		{line: "temporal-dev ready grpc=localhost ui=none", wantErr: "grpc address"},
		{line: "temporal-dev ready grpc=127.0.0.1:1 ui=http://nope", wantErr: "ui address"},
		{line: "something else", wantErr: "not a ready line"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := parseReadyLine(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseReadyLine error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseReadyLine = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// A stack's Temporal server (file database, web UI) and ZooKeeper come back on the same
// addresses after a restart, with their data.
func TestStackRestartsServersInPlace(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	st, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Stop() })

	z, err := st.StartZooKeeper(ctx, ZooKeeperOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := zk.Connect([]string{z.Addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Create("/kept", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if err := st.Restart(ctx, "zookeeper"); err != nil {
		t.Fatal(err)
	}
	var data []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		if data, _, err = conn.Get("/kept"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || string(data) != "x" {
		t.Fatalf("after the restart: %q, %v", data, err)
	}

	tp, err := st.StartTemporal(ctx, TemporalOptions{DBFile: st.Path("temporal.db"), UI: true})
	if err != nil {
		t.Fatal(err)
	}
	addr, ui := tp.Addr, tp.UIAddr
	if err := st.Kill("temporal-dev"); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckAlive(); err == nil || !strings.Contains(err.Error(), "temporal-dev") {
		t.Fatalf("CheckAlive after a kill = %v", err)
	}
	if err := tp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := parseReadyLine(strings.TrimSpace(tp.ReadyLine()))
	if err != nil || r.grpc != addr || r.ui != ui {
		t.Fatalf("restarted on %+v (%v), want grpc %s ui %s", r, err, addr, ui)
	}
	if err := st.CheckAlive(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StartTemporal(ctx, TemporalOptions{}); err == nil {
		t.Fatal("a second component named temporal-dev was started")
	}
	if err := st.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
