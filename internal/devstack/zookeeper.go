package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ZooKeeper server settings.
const (
	// zkMainClass runs a standalone server from a zoo.cfg.
	zkMainClass = "org.apache.zookeeper.server.ZooKeeperServerMain"
	// zkQuorumMainClass runs a member of a replicated ensemble from a zoo.cfg.
	zkQuorumMainClass = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
	// ZooKeeperJar is the server jar of the Debian zookeeper package; its manifest
	// Class-Path names the dependencies in /usr/share/java.
	ZooKeeperJar = "/usr/share/java/zookeeper.jar"
	// zkStartTimeout bounds a server start (a JVM start on a busy machine).
	zkStartTimeout = 90 * time.Second
	// zkStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	zkStopTimeout = 10 * time.Second
	// ZooKeeperInstallHint names what provides the server.
	ZooKeeperInstallHint = "install java and the zookeeper package with scripts/install-deps.sh"
)

// zkOptionalJars are added to the class path when present: log4j, so that the server
// logs, and the Netty modules the TLS connection factory needs beyond those
// zookeeper.jar's manifest names.
var zkOptionalJars = []string{
	"/usr/share/java/slf4j-log4j12.jar",
	"/usr/share/java/log4j-1.2.jar",
	"/usr/share/java/netty-codec.jar",
	"/usr/share/java/netty-resolver.jar",
	"/usr/share/java/netty-transport-native-unix-common.jar",
}

// ZooKeeperTLS configures a TLS client port with mutual authentication.
type ZooKeeperTLS struct {
	// CertFile and KeyFile are the server's certificate and private key (PEM, the key
	// unencrypted PKCS#8).
	CertFile, KeyFile string
	// CAFile holds the CA certificates that client certificates must chain to (PEM).
	CAFile string
}

// ZooKeeperMember is a member of a replicated ensemble on 127.0.0.1.
type ZooKeeperMember struct {
	// ID is the member's myid, 1 to 255.
	ID int
	// ClientPort serves clients; QuorumPort carries the leader's updates to the
	// followers; ElectionPort is for leader election.
	ClientPort, QuorumPort, ElectionPort int
}

// Addr returns the member's client address.
func (m ZooKeeperMember) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.ClientPort))
}

// ZooKeeperOptions configure StartZooKeeper.
type ZooKeeperOptions struct {
	// Name names the process; empty means "zookeeper".
	Name string
	// ID, when not zero, makes the server the member with this myid of Ensemble, a
	// replicated ensemble; Port is then ignored (the member's ClientPort counts). A
	// member is ready once the ensemble has a quorum, so the members of a new
	// ensemble must be started at the same time.
	ID int
	// Ensemble lists every member of the ensemble, this one included.
	Ensemble []ZooKeeperMember
	// Dir holds zoo.cfg and the data directory (Dir/data); required. Data in it
	// survives restarts.
	Dir string
	// Port is the client port on 127.0.0.1; 0 picks a free port.
	Port int
	// LogFile receives the server's log; empty means Dir/zookeeper.log.
	LogFile string
	// TLS, when set, adds a TLS client port (Netty connection factory) next to the
	// plain one.
	TLS *ZooKeeperTLS
	// Java is the java executable; empty means $JAVA, or java on PATH.
	Java string
	// StartTimeout bounds the start; zero means 90 s.
	StartTimeout time.Duration
	// Output, when set, also receives the log.
	Output io.Writer
}

// ZooKeeper is a standalone ZooKeeper server process from the Debian package.
// Restart brings it back on the same ports with the same data.
type ZooKeeper struct {
	*Proc
	// Addr is the plain client address, "127.0.0.1:<port>".
	Addr string
	// SecureAddr is the TLS client address, "" without TLS.
	SecureAddr string
	// Dir holds zoo.cfg and the data directory.
	Dir string
}

// StartZooKeeper starts a standalone ZooKeeper and waits until it accepts sessions (it
// answers "ruok" with "imok" and "srvr" with its mode). The server runs until it is
// stopped or the calling process exits.
func StartZooKeeper(ctx context.Context, opts ZooKeeperOptions) (*ZooKeeper, error) {
	java := opts.Java
	if java == "" {
		java = os.Getenv("JAVA")
	}
	if java == "" {
		var err error
		if java, err = exec.LookPath("java"); err != nil {
			return nil, fmt.Errorf("finding java: %w (%s)", err, ZooKeeperInstallHint)
		}
	}
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		return nil, fmt.Errorf("finding the zookeeper server jar: %w (%s)", err, ZooKeeperInstallHint)
	}
	if opts.Dir == "" {
		return nil, errors.New("starting zookeeper: no directory")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("starting zookeeper: %w", err)
	}
	opts.Dir = dir
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("starting zookeeper: %w", err)
	}
	var lastErr error
	// A free port can be taken between probing and binding; try again then.
	for range 3 {
		z, err := startZooKeeper(ctx, java, opts)
		if err == nil {
			return z, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || opts.Port != 0 || opts.ID != 0 {
			break
		}
	}
	return nil, lastErr
}

// errPortTaken reports a server that could not bind its port.
var errPortTaken = errors.New("port already in use")

func startZooKeeper(ctx context.Context, java string, opts ZooKeeperOptions) (*ZooKeeper, error) {
	dir := opts.Dir
	port := opts.Port
	var member *ZooKeeperMember
	if opts.ID != 0 {
		for i := range opts.Ensemble {
			if opts.Ensemble[i].ID == opts.ID {
				member = &opts.Ensemble[i]
			}
		}
		if member == nil {
			return nil, fmt.Errorf("starting zookeeper: member %d is not in the ensemble %v", opts.ID, opts.Ensemble)
		}
		port = member.ClientPort
	}
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	} else if PortOpen(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) {
		return nil, fmt.Errorf("starting zookeeper: 127.0.0.1:%d is already in use", port)
	}
	cfg := []string{
		"tickTime=1000",
		"minSessionTimeout=2000",
		"maxSessionTimeout=60000",
		"initLimit=10",
		"syncLimit=5",
		"dataDir=" + filepath.Join(dir, "data"),
		"clientPort=" + strconv.Itoa(port),
		"clientPortAddress=127.0.0.1",
		"maxClientCnxns=0",
		"admin.enableServer=false",
		"4lw.commands.whitelist=*",
		"forceSync=no",
		"autopurge.snapRetainCount=3",
		"autopurge.purgeInterval=1",
	}
	mainClass := zkMainClass
	if member != nil {
		mainClass = zkQuorumMainClass
		for _, m := range opts.Ensemble {
			cfg = append(cfg, fmt.Sprintf("server.%d=127.0.0.1:%d:%d", m.ID, m.QuorumPort, m.ElectionPort))
		}
		// A member restarted after a kill -9 may take a moment to rejoin; the others
		// carry on meanwhile.
		cfg = append(cfg, "cnxTimeout=2000", "quorumListenOnAllIPs=false")
		myid := filepath.Join(dir, "data", "myid")
		if err := os.WriteFile(myid, []byte(strconv.Itoa(member.ID)+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", myid, err)
		}
	}
	z := &ZooKeeper{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir}
	if opts.TLS != nil {
		securePort, err := FreePort()
		if err != nil {
			return nil, err
		}
		keystore := filepath.Join(dir, "keystore.pem")
		if err := concatFiles(keystore, opts.TLS.KeyFile, opts.TLS.CertFile); err != nil {
			return nil, fmt.Errorf("writing zookeeper keystore: %w", err)
		}
		cfg = append(cfg,
			"secureClientPort="+strconv.Itoa(securePort),
			"secureClientPortAddress=127.0.0.1",
			"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
			"ssl.keyStore.location="+keystore,
			"ssl.keyStore.type=PEM",
			"ssl.trustStore.location="+opts.TLS.CAFile,
			"ssl.trustStore.type=PEM",
			"ssl.clientAuth=need",
		)
		z.SecureAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(securePort))
	}
	cfgPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(cfg, "\n")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing zoo.cfg: %w", err)
	}
	log4j := filepath.Join(dir, "log4j.properties")
	if err := os.WriteFile(log4j, []byte(strings.Join([]string{
		"log4j.rootLogger=INFO, CONSOLE",
		"log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender",
		"log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout",
		"log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n",
	}, "\n")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing log4j.properties: %w", err)
	}
	classpath := []string{dir, ZooKeeperJar}
	for _, jar := range zkOptionalJars {
		if _, err := os.Stat(jar); err == nil {
			classpath = append(classpath, jar)
		}
	}
	logFile := opts.LogFile
	if logFile == "" {
		logFile = filepath.Join(dir, "zookeeper.log")
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = zkStartTimeout
	}
	z.Proc = NewProc(ProcSpec{
		Name: cmpOr(opts.Name, "zookeeper"),
		Path: java,
		Args: []string{
			"-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
			"-Dzookeeper.admin.enableServer=false",
			"-Dlog4j.configuration=file:" + log4j,
			"-cp", strings.Join(classpath, ":"),
			mainClass, cfgPath,
		},
		Dir:     dir,
		LogFile: logFile,
		Output:  opts.Output,
		ReadyCheck: func(context.Context) error {
			if !ZooKeeperServing(z.Addr) {
				return fmt.Errorf("no session service on %s yet", z.Addr)
			}
			if z.SecureAddr != "" && !PortOpen(z.SecureAddr) {
				return fmt.Errorf("secure port %s not open yet", z.SecureAddr)
			}
			return nil
		},
		StartTimeout: timeout,
		StopTimeout:  zkStopTimeout,
		DeathSignal:  syscall.SIGKILL,
	})
	if err := z.Start(ctx); err != nil {
		if strings.Contains(z.Tail(tailLines), "Address already in use") {
			return nil, fmt.Errorf("%w: zookeeper on %s", errPortTaken, z.Addr)
		}
		return nil, err
	}
	return z, nil
}

// ZooKeeperRuok reports whether the ZooKeeper at addr answers "ruok" with "imok".
func ZooKeeperRuok(addr string) bool {
	return string(fourLetterWord(addr, "ruok")) == "imok"
}

// ZooKeeperServing reports whether the ZooKeeper at addr accepts sessions: it answers
// "ruok" with "imok" and "srvr" with its mode ("ruok" answers slightly earlier).
func ZooKeeperServing(addr string) bool {
	return ZooKeeperRuok(addr) && strings.Contains(string(fourLetterWord(addr, "srvr")), "Mode:")
}

// ZooKeeperMode returns the mode the ZooKeeper at addr reports ("leader", "follower",
// "standalone"), or "" when it does not answer or serves no requests (a member without
// a quorum).
func ZooKeeperMode(addr string) string {
	for _, line := range strings.Split(string(fourLetterWord(addr, "srvr")), "\n") {
		if mode, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(mode)
		}
	}
	return ""
}

// ZooKeeperSessionRequests asks the ZooKeeper at addr (four-letter word `cons`) how
// many requests each session connected to it has sent, pings included.
func ZooKeeperSessionRequests(ctx context.Context, addr string) (map[int64]int64, error) {
	out, err := FourLetterWord(ctx, addr, "cons")
	if err != nil {
		return nil, err
	}
	return parseCons(strings.NewReader(out))
}

// consLine matches one connection of ZooKeeper's `cons` output.
var consLine = regexp.MustCompile(`recved=(\d+).*?sid=0x([0-9a-fA-F]+)`)

// parseCons returns the requests received per session id from ZooKeeper's `cons`
// output. Connections without a session (the one asking) are left out.
func parseCons(r io.Reader) (map[int64]int64, error) {
	out := map[int64]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := consLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		recved, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing cons line %q: %w", sc.Text(), err)
		}
		sid, err := strconv.ParseUint(m[2], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing cons line %q: %w", sc.Text(), err)
		}
		out[int64(sid)] += recved
	}
	return out, sc.Err()
}

// fourLetterTimeout bounds one four-letter command.
const fourLetterTimeout = 10 * time.Second

// FourLetterWord sends a ZooKeeper four-letter command to addr and returns the answer,
// within ctx and at most fourLetterTimeout.
func FourLetterWord(ctx context.Context, addr, cmd string) (string, error) {
	return askFourLetter(ctx, net.Dialer{}, addr, cmd)
}

// askFourLetter is FourLetterWord connecting with d.
func askFourLetter(ctx context.Context, d net.Dialer, addr, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, fourLetterTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("asking ZooKeeper %s: %w", cmd, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", fmt.Errorf("asking ZooKeeper %s: %w", cmd, err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("asking ZooKeeper %s: %w", cmd, err)
	}
	return string(out), nil
}

// fourLetterWord is FourLetterWord for the readiness probes: connected within 1 s and
// answered within 2 s, and an unanswered command is an empty answer.
func fourLetterWord(addr, cmd string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := askFourLetter(ctx, net.Dialer{Timeout: time.Second}, addr, cmd)
	if err != nil {
		return nil
	}
	return []byte(out)
}

// PortOpen reports whether something accepts TCP connections on addr.
func PortOpen(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func concatFiles(dst string, srcs ...string) error {
	var out []byte
	for _, src := range srcs {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		out = append(out, b...)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			out = append(out, '\n')
		}
	}
	return os.WriteFile(dst, out, 0o600)
}
