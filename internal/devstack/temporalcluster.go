package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TemporalServices are the services of a Temporal cluster, in start order; each runs
// as a process of its own, named "temporal-<service>".
var TemporalServices = []string{"frontend", "history", "matching", "worker"}

const (
	// TemporalDatabase and TemporalVisibilityDatabase are the PostgreSQL databases of
	// the cluster's default and visibility stores.
	TemporalDatabase           = "temporal"
	TemporalVisibilityDatabase = "temporal_visibility"
	// temporalServiceReadyPrefix starts the line "temporal-dev service" prints once
	// its services serve.
	temporalServiceReadyPrefix = "temporal-dev service ready "
	// temporalServiceStartTimeout bounds a service's start: ringpop's join waits for
	// peers that start at the same time.
	temporalServiceStartTimeout = 3 * time.Minute
)

// temporalSchemas maps each database to the embedded schema of Temporal's SQL tool.
var temporalSchemas = []struct{ db, schema string }{
	{TemporalDatabase, "postgresql/v12/temporal"},
	{TemporalVisibilityDatabase, "postgresql/v12/visibility"},
}

// MaxMembershipPort is the highest ringpop membership port: Temporal's SQL schemas
// keep it in a smallint column (cluster_membership.rpc_port).
const MaxMembershipPort = 32767

// FreeMembershipPort returns a port on 127.0.0.1 that was free a moment ago and fits a
// membership port: between 10000 and MaxMembershipPort, below Linux's ephemeral range,
// which FreePort draws from.
func FreeMembershipPort() (int, error) {
	const low = 10000
	for range 200 {
		port := low + rand.IntN(MaxMembershipPort-low+1)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port between %d and %d on 127.0.0.1", low, MaxMembershipPort)
}

// TemporalServicePorts are a service's gRPC and ringpop membership ports.
type TemporalServicePorts struct {
	GRPC, Membership int
}

// TemporalClusterOptions configure StartTemporalCluster.
type TemporalClusterOptions struct {
	// Binary is the temporal-dev executable; empty means TemporalDevBinary().
	Binary string
	// Postgres is the database server; required.
	Postgres *Postgres
	// Ports holds every service's ports by service name; services missing get free
	// ports. FrontendHTTPPort likewise.
	Ports            map[string]TemporalServicePorts
	FrontendHTTPPort int
	// UIPort serves the web UI from the frontend's process; 0 picks a free port, -1
	// serves none.
	UIPort int
	// Shards is the number of history shards; 0 means 4. It is fixed on the first
	// start.
	Shards int
	// Namespaces are registered in addition to "default".
	Namespaces []string
	// DynamicConfig are KEY=VALUE dynamic configuration values for every service.
	DynamicConfig []string
	// LogLevel is the services' log level; empty means warn.
	LogLevel string
	// LogFile returns the log file of a service ("frontend", ..., and "schema" for the
	// schema tool); nil keeps only the last lines.
	LogFile func(service string) string
	// Output, when set, also receives every service's output.
	Output io.Writer
	// PortsFile, when set, keeps the chosen ports: a later start with the same file
	// uses them again where the options leave ports open, so that the cluster's
	// address (kept in the database's cluster metadata) stays the same.
	PortsFile string
}

// clusterPorts is the content of TemporalClusterOptions.PortsFile.
type clusterPorts struct {
	Services map[string]TemporalServicePorts `json:"services"`
	HTTP     int                             `json:"http"`
	UI       int                             `json:"ui"`
}

// TemporalCluster is a Temporal cluster whose four services run as separate
// processes on PostgreSQL, finding each other through ringpop membership over the
// database. Any service can be killed and started again on its ports.
type TemporalCluster struct {
	// Services holds each service's process by service name.
	Services map[string]*Proc
	// Ports holds each service's ports by service name.
	Ports map[string]TemporalServicePorts
	// Addr is the frontend's gRPC address; UIAddr the web UI's (host:port), "" without
	// a UI.
	Addr, UIAddr string
}

// UIURL returns the web UI's base URL, or "" without a UI.
func (c *TemporalCluster) UIURL() string {
	if c.UIAddr == "" {
		return ""
	}
	return "http://" + c.UIAddr
}

// SetupTemporalSchema creates the cluster's databases on pg with Temporal's SQL tool
// (temporal-dev sql-tool) when they do not exist, and updates their schemas to the
// server's version. The tool's output goes to logFile (appended; empty discards it).
func SetupTemporalSchema(ctx context.Context, binary string, pg *Postgres, logFile string) error {
	var out io.Writer = io.Discard
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	tool := func(db string, args ...string) (string, error) {
		full := append([]string{"sql-tool", "--plugin", "postgres12", "--endpoint", pg.Host,
			"--port", strconv.Itoa(pg.Port), "--user", pg.User, "--database", db}, args...)
		cmd := exec.CommandContext(ctx, binary, full...)
		var buf strings.Builder
		cmd.Stdout = io.MultiWriter(out, &buf)
		cmd.Stderr = cmd.Stdout
		fmt.Fprintf(out, "==== %s: temporal-dev %s\n", time.Now().Format(time.RFC3339), strings.Join(full, " "))
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("temporal-dev %s: %w\n%s", strings.Join(full, " "), err, buf.String())
		}
		return buf.String(), err
	}
	for _, s := range temporalSchemas {
		// The marker lives beside the database files, so a new data directory means
		// a new setup.
		marker := filepath.Join(filepath.Dir(pg.DataDir), "schema-"+s.db+".done")
		if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
			if text, err := tool(s.db, "create-database"); err != nil && !strings.Contains(text, "already exists") {
				return err
			}
			if _, err := tool(s.db, "setup-schema", "--version", "0.0"); err != nil {
				return err
			}
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				return err
			}
		}
		if _, err := tool(s.db, "update-schema", "--schema-name", s.schema); err != nil {
			return err
		}
	}
	return nil
}

// TemporalServiceArgs returns the "temporal-dev service" command line of service,
// without the binary.
func TemporalServiceArgs(service string, pg *Postgres, ports map[string]TemporalServicePorts, httpPort, uiPort, shards int, namespaces, dynamic []string, level string) []string {
	args := []string{"service", "--service", service, "--ip", "127.0.0.1",
		"--pg-host", pg.Host, "--pg-port", strconv.Itoa(pg.Port), "--pg-user", pg.User,
		"--db", TemporalDatabase, "--visibility-db", TemporalVisibilityDatabase,
		"--shards", strconv.Itoa(shards), "--log-level", cmpOr(level, "warn"),
		"--frontend-http-port", strconv.Itoa(httpPort)}
	for _, s := range TemporalServices {
		args = append(args,
			"--"+s+"-port", strconv.Itoa(ports[s].GRPC),
			"--"+s+"-membership-port", strconv.Itoa(ports[s].Membership))
	}
	if service == "frontend" && uiPort > 0 {
		args = append(args, "--ui-port", strconv.Itoa(uiPort))
	}
	for _, ns := range namespaces {
		args = append(args, "--namespace", ns)
	}
	for _, kv := range dynamic {
		args = append(args, "--dynamic-config-value", kv)
	}
	return args
}

// StartTemporalCluster sets up the schema, starts the matching service and then the
// other three at once (the ring forms while they start), and returns once each serves:
// the frontend has the namespaces and search attributes in place and its UI answers.
func StartTemporalCluster(ctx context.Context, opts TemporalClusterOptions) (*TemporalCluster, error) {
	if opts.Postgres == nil {
		return nil, errors.New("starting the Temporal cluster: no PostgreSQL")
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = TemporalDevBinary(); err != nil {
			return nil, err
		}
	}
	logFile := func(s string) string {
		if opts.LogFile == nil {
			return ""
		}
		return opts.LogFile(s)
	}
	if err := SetupTemporalSchema(ctx, bin, opts.Postgres, logFile("schema")); err != nil {
		return nil, fmt.Errorf("setting up the Temporal schema: %w", err)
	}

	var saved clusterPorts
	if opts.PortsFile != "" {
		data, err := os.ReadFile(opts.PortsFile)
		switch {
		case err == nil:
			if err := json.Unmarshal(data, &saved); err != nil {
				return nil, fmt.Errorf("reading %s: %w", opts.PortsFile, err)
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	ports := make(map[string]TemporalServicePorts, len(TemporalServices))
	for _, s := range TemporalServices {
		p := opts.Ports[s]
		if p.GRPC == 0 {
			p.GRPC = saved.Services[s].GRPC
		}
		if p.Membership == 0 {
			p.Membership = saved.Services[s].Membership
		}
		var err error
		if p.GRPC == 0 {
			if p.GRPC, err = FreePort(); err != nil {
				return nil, err
			}
		}
		if p.Membership == 0 {
			if p.Membership, err = FreeMembershipPort(); err != nil {
				return nil, err
			}
		}
		ports[s] = p
	}
	httpPort := cmpInt(opts.FrontendHTTPPort, saved.HTTP)
	uiPort := opts.UIPort
	if uiPort == 0 && saved.UI > 0 {
		uiPort = saved.UI
	}
	var err error
	if httpPort == 0 {
		if httpPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if uiPort == 0 {
		if uiPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	shards := opts.Shards
	if shards <= 0 {
		shards = 4
	}
	if opts.PortsFile != "" {
		data, err := json.MarshalIndent(clusterPorts{Services: ports, HTTP: httpPort, UI: uiPort}, "", "  ")
		if err == nil {
			err = os.WriteFile(opts.PortsFile, append(data, '\n'), 0o644)
		}
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", opts.PortsFile, err)
		}
	}

	c := &TemporalCluster{
		Services: make(map[string]*Proc, len(TemporalServices)),
		Ports:    ports,
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(ports["frontend"].GRPC)),
	}
	if uiPort > 0 {
		c.UIAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(uiPort))
	}
	for _, s := range TemporalServices {
		c.Services[s] = NewProc(ProcSpec{
			Name:         "temporal-" + s,
			Path:         bin,
			Args:         TemporalServiceArgs(s, opts.Postgres, ports, httpPort, uiPort, shards, opts.Namespaces, opts.DynamicConfig, opts.LogLevel),
			LogFile:      logFile(s),
			Output:       opts.Output,
			ReadyMarker:  temporalServiceReadyPrefix,
			StartTimeout: temporalServiceStartTimeout,
			StopTimeout:  temporalStopTimeout,
		})
	}
	// Matching starts first, alone: it serves without the other services, and each
	// service's start writes the cluster metadata when the configuration changed it
	// (a new database, another frontend address), which fails for all but one of
	// several services that try at the same moment. The others start together, so
	// that the ring forms while they do.
	errs := make([]error, len(TemporalServices))
	first := c.Services["matching"].Start(ctx)
	var wg sync.WaitGroup
	for i, s := range TemporalServices {
		if s == "matching" || first != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Services[s].Start(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, first)...); err != nil {
		for _, p := range c.Services {
			_ = p.Stop()
		}
		return nil, err
	}
	return c, nil
}
