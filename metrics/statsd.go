package metrics

import (
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Environment variables that enable statsd, as upstream reads them.
const (
	EnvStatsdHost = "STATSD_HOST"
	EnvStatsdPort = "STATSD_PORT"
)

// Defaults of upstream's statsd client when only one of the variables is set.
const (
	DefaultStatsdHost = "localhost"
	DefaultStatsdPort = 8125
)

// maxPacket is the largest datagram a pipeline sends, as upstream's client: lines are
// joined with '\n' until the next one would reach it.
const maxPacket = 512

// Statsd sends metrics to a statsd server over UDP, in the line format of the Python
// statsd client upstream Nodepool uses: "name:1|c" for counters, "name:12.000000|ms"
// for timers (whole milliseconds), "name:5|g" for gauges. Several lines share a
// datagram, separated by '\n'. Send errors are logged at debug level and dropped.
// A Statsd is safe for concurrent use and is a Recorder.
type Statsd struct {
	addr string
	log  *slog.Logger

	mu   sync.Mutex
	conn net.Conn
}

// StatsdFromEnv returns a Statsd for STATSD_HOST and STATSD_PORT as read by getenv, or
// nil when neither is set (statsd is off, as upstream). A port alone sends to
// localhost, a host alone to port 8125.
func StatsdFromEnv(getenv func(string) string, logger *slog.Logger) (*Statsd, error) {
	host, port := getenv(EnvStatsdHost), getenv(EnvStatsdPort)
	if host == "" && port == "" {
		return nil, nil
	}
	if host == "" {
		host = DefaultStatsdHost
	}
	if port == "" {
		port = strconv.Itoa(DefaultStatsdPort)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return nil, fmt.Errorf("%s: want a port number, got %q", EnvStatsdPort, port)
	}
	return NewStatsd(net.JoinHostPort(host, port), logger)
}

// NewStatsd returns a Statsd sending to addr ("host:port"). The name is resolved
// once, now.
func NewStatsd(addr string, logger *slog.Logger) (*Statsd, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("statsd at %s: %w", addr, err)
	}
	return &Statsd{addr: addr, log: logger, conn: conn}, nil
}

// Addr returns the server address.
func (s *Statsd) Addr() string { return s.addr }

// Close releases the socket. Later sends are dropped.
func (s *Statsd) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Counter formats a counter line.
func Counter(name string, n int64) string { return name + ":" + strconv.FormatInt(n, 10) + "|c" }

// Timer formats a timer line in whole milliseconds, as upstream measures launches.
func Timer(name string, d time.Duration) string {
	return fmt.Sprintf("%s:%0.6f|ms", name, float64(d.Milliseconds()))
}

// Gauge formats a gauge line. Upstream's client writes a negative gauge as a reset
// to 0 followed by the negative delta; gauges here are never negative.
func Gauge(name string, v float64) string {
	return name + ":" + strconv.FormatFloat(v, 'f', -1, 64) + "|g"
}

// Send sends lines, packed into datagrams of at most 512 bytes.
func (s *Statsd) Send(lines ...string) {
	if len(lines) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return
	}
	var b strings.Builder
	flush := func() {
		if b.Len() == 0 {
			return
		}
		if _, err := s.conn.Write([]byte(b.String())); err != nil {
			s.log.Debug("sending to statsd", "addr", s.addr, "error", err)
		}
		b.Reset()
	}
	for _, l := range lines {
		if b.Len() > 0 && b.Len()+1+len(l) >= maxPacket {
			flush()
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	flush()
}

// LaunchKeys returns the statsd keys of a launch, in upstream's order:
// nodepool.launch.provider.<provider>.<result>, nodepool.launch.<result>,
// nodepool.launch.provider.<provider>.<az>.<result> (with an az) and
// nodepool.launch.requestor.<requestor>.<result> (with a requestor, normalized).
func LaunchKeys(provider, az, requestor, result string) []string {
	keys := []string{
		"nodepool.launch.provider." + provider + "." + result,
		"nodepool.launch." + result,
	}
	if az != "" {
		keys = append(keys, "nodepool.launch.provider."+provider+"."+az+"."+result)
	}
	if requestor != "" {
		keys = append(keys, "nodepool.launch.requestor."+NormalizeName(requestor)+"."+result)
	}
	return keys
}

// Launch implements Recorder: a timer and a counter under each of LaunchKeys.
func (s *Statsd) Launch(provider, az, requestor, result string, d time.Duration) {
	keys := LaunchKeys(provider, az, requestor, result)
	lines := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		lines = append(lines, Timer(k, d), Counter(k, 1))
	}
	s.Send(lines...)
}

// Leaked implements Recorder: nodepool.provider.<provider>.leaked.<type>s.
func (s *Statsd) Leaked(provider, resourceType string) {
	s.Send(Counter("nodepool.provider."+provider+".leaked."+PluralType(resourceType), 1))
}

// Activity implements Recorder. Upstream has no such metric; statsd gets nothing.
func (s *Statsd) Activity(string, int32, bool) {}

// statsdGauges renders a snapshot as upstream's statsd gauge lines, sorted.
func statsdGauges(s *Snapshot) []string {
	var lines []string
	for state, n := range s.ByState {
		lines = append(lines, Gauge("nodepool.nodes."+state, float64(n)))
	}
	for k, n := range s.ByProvider {
		lines = append(lines, Gauge("nodepool.provider."+k[0]+".nodes."+k[1], float64(n)))
	}
	for k, n := range s.ByLabel {
		lines = append(lines, Gauge("nodepool.label."+k[0]+".nodes."+k[1], float64(n)))
	}
	for k, n := range s.Addressable {
		lines = append(lines, Gauge("nodepool.provider."+k.Provider+".pool."+k.Pool+".addressable_requests", float64(n)))
	}
	sort.Strings(lines)
	return lines
}

// statsdLimits renders the configured limits as upstream's statsd gauge lines, sorted.
func statsdLimits(l Limits) []string {
	var lines []string
	for provider, n := range l.MaxServers {
		lines = append(lines, Gauge("nodepool.provider."+provider+".max_servers", float64(n)))
	}
	for tenant, res := range l.Tenants {
		for r, n := range res {
			lines = append(lines, Gauge("nodepool.tenant_limits."+NormalizeName(tenant)+"."+NormalizeName(r), float64(n)))
		}
	}
	sort.Strings(lines)
	return lines
}
