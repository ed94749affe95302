package metrics

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// udpServer is a statsd server for tests: it hands every datagram it receives to
// packets.
type udpServer struct {
	conn    net.PacketConn
	packets chan string
}

func listenUDP(t *testing.T) *udpServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &udpServer{conn: conn, packets: make(chan string, 10000)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			s.packets <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { _ = conn.Close() })
	return s
}

func (s *udpServer) addr() string { return s.conn.LocalAddr().String() }

// next returns the next datagram.
func (s *udpServer) next(t *testing.T) string {
	t.Helper()
	select {
	case p := <-s.packets:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no statsd datagram")
		return ""
	}
}

// quiet reports that no datagram arrives for a while.
func (s *udpServer) quiet(d time.Duration) (string, bool) {
	select {
	case p := <-s.packets:
		return p, false
	case <-time.After(d):
		return "", true
	}
}

func newTestStatsd(t *testing.T) (*Statsd, *udpServer) {
	t.Helper()
	srv := listenUDP(t)
	s, err := NewStatsd(srv.addr(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, srv
}

func TestStatsdLaunchLines(t *testing.T) {
	s, srv := newTestStatsd(t)
	s.Launch("aws-us-east-1", "us-east-1a", "zuul.example.com:4730", "ready", 83*time.Second+456789*time.Microsecond)
	assert.Equal(t, strings.Join([]string{
		"nodepool.launch.provider.aws-us-east-1.ready:83456.000000|ms",
		"nodepool.launch.provider.aws-us-east-1.ready:1|c",
		"nodepool.launch.ready:83456.000000|ms",
		"nodepool.launch.ready:1|c",
		"nodepool.launch.provider.aws-us-east-1.us-east-1a.ready:83456.000000|ms",
		"nodepool.launch.provider.aws-us-east-1.us-east-1a.ready:1|c",
		"nodepool.launch.requestor.zuul_example_com_4730.ready:83456.000000|ms",
		"nodepool.launch.requestor.zuul_example_com_4730.ready:1|c",
	}, "\n"), srv.next(t))

	// Without an availability zone or a requestor, their keys are left out.
	s.Launch("sim", "", "", LaunchResult("Quota"), 1500*time.Millisecond)
	assert.Equal(t, strings.Join([]string{
		"nodepool.launch.provider.sim.error.quota:1500.000000|ms",
		"nodepool.launch.provider.sim.error.quota:1|c",
		"nodepool.launch.error.quota:1500.000000|ms",
		"nodepool.launch.error.quota:1|c",
	}, "\n"), srv.next(t))
}

func TestStatsdLeakedAndActivity(t *testing.T) {
	s, srv := newTestStatsd(t)
	s.Activity("CreateStep", 3, true) // no upstream name: nothing is sent
	s.Leaked("aws-us-east-1", "instance")
	assert.Equal(t, "nodepool.provider.aws-us-east-1.leaked.instances:1|c", srv.next(t))
	s.Leaked("aws-us-east-1", "volume")
	assert.Equal(t, "nodepool.provider.aws-us-east-1.leaked.volumes:1|c", srv.next(t))
}

// Lines are packed into datagrams below 512 bytes, in order, as upstream's client
// packs a pipeline.
func TestStatsdPacksDatagrams(t *testing.T) {
	s, srv := newTestStatsd(t)
	var lines []string
	for i := range 100 {
		lines = append(lines, Gauge("nodepool.label.label-"+strings.Repeat("x", i%7)+".nodes.ready", float64(i)))
	}
	s.Send(lines...)
	var got []string
	for len(got) < len(lines) {
		p := srv.next(t)
		assert.Less(t, len(p), maxPacket)
		got = append(got, strings.Split(p, "\n")...)
	}
	assert.Equal(t, lines, got)
}

func TestStatsdLineFormats(t *testing.T) {
	assert.Equal(t, "a.b:1|c", Counter("a.b", 1))
	assert.Equal(t, "a.b:12.000000|ms", Timer("a.b", 12999*time.Microsecond))
	assert.Equal(t, "a.b:5|g", Gauge("a.b", 5))
	assert.Equal(t, "a.b:0.5|g", Gauge("a.b", 0.5))
}

func TestStatsdFromEnv(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	s, err := StatsdFromEnv(env(nil), nil)
	require.NoError(t, err)
	assert.Nil(t, s, "off unless STATSD_HOST or STATSD_PORT is set")

	s, err = StatsdFromEnv(env(map[string]string{EnvStatsdPort: "9125"}), nil)
	require.NoError(t, err)
	assert.Equal(t, "localhost:9125", s.Addr())
	require.NoError(t, s.Close())

	s, err = StatsdFromEnv(env(map[string]string{EnvStatsdHost: "127.0.0.1"}), nil)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8125", s.Addr())
	require.NoError(t, s.Close())
	s.Send("after.close:1|c") // dropped, no panic

	_, err = StatsdFromEnv(env(map[string]string{EnvStatsdHost: "127.0.0.1", EnvStatsdPort: "statsd"}), nil)
	assert.ErrorContains(t, err, "STATSD_PORT")
}

func TestLaunchResultAndNames(t *testing.T) {
	for errType, want := range map[string]string{
		"": "ready", "Quota": "error.quota", "Capacity": "error.capacity", "Timeout": "error.servercreatetimeout",
		"LockLost": "error.zksession", "Nodescan": "error.keyscan", "NodeGone": "error.nodepool", "Permanent": "error.unknown",
		"Transient": "error.unknown", "anything": "error.unknown",
	} {
		assert.Equal(t, want, LaunchResult(errType), errType)
	}
	assert.Equal(t, "instances", PluralType("instance"))
	assert.Equal(t, "hosts", PluralType("hosts"))
	assert.Equal(t, "zuul_example_com_1", NormalizeName("zuul.example.com:1"))
}

func TestMulti(t *testing.T) {
	assert.Equal(t, Nop{}, Multi())
	a, b := &fakeRecorder{}, &fakeRecorder{}
	assert.Same(t, a, Multi(nil, a))
	m := Multi(a, b)
	m.Launch("p", "az", "r", "ready", time.Second)
	m.Leaked("p", "instance")
	m.Activity("A", 2, false)
	for _, r := range []*fakeRecorder{a, b} {
		assert.Equal(t, []string{"launch p az r ready 1s", "leaked p instance", "activity A 2 false"}, r.events())
	}
	assert.Equal(t, Nop{}, Sinks{}.Recorder())
	assert.Nil(t, Sinks{}.Handler())
	assert.False(t, Sinks{}.Enabled())
}
