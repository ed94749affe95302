package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// PostgresInstallHint names what provides the server.
	PostgresInstallHint = "install the postgresql package with scripts/install-deps.sh"
	// PostgresUser is the superuser initdb creates; local connections need no password.
	PostgresUser = "temporal"
	// postgresStopTimeout is how long Stop waits after SIGTERM (a smart shutdown that
	// waits for clients) before SIGKILL.
	postgresStopTimeout = 15 * time.Second
	// postgresStartTimeout bounds initdb plus the server start.
	postgresStartTimeout = 2 * time.Minute
)

// PostgresOptions configure StartPostgres.
type PostgresOptions struct {
	// Dir holds the database cluster (Dir/data); required. It survives restarts.
	Dir string
	// Port is the port on 127.0.0.1; 0 picks a free port.
	Port int
	// BinDir holds initdb and postgres; empty means the newest
	// /usr/lib/postgresql/<version>/bin of the Debian packages.
	BinDir string
	// MaxConnections is the server's max_connections; zero means 300.
	MaxConnections int
	// LogFile receives the server's log; empty keeps only its last lines.
	LogFile string
	// Output, when set, also receives the log.
	Output io.Writer
}

// Postgres is a PostgreSQL server of its own (not the system's cluster), with its data
// in a directory of the stack. Restart brings it back on the same port with the same
// data. Started by root, it runs as the postgres user, since PostgreSQL refuses to run
// as root.
type Postgres struct {
	*Proc
	// Host and Port locate the server; it listens on 127.0.0.1 only.
	Host string
	Port int
	// User is the superuser to connect as, without a password.
	User string
	// DataDir is the database cluster's directory.
	DataDir string
}

// Addr returns host:port.
func (p *Postgres) Addr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// PostgresBinDir returns the directory of the newest PostgreSQL server binaries the
// Debian packages installed.
func PostgresBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(matches) == 0 {
		return "", fmt.Errorf("no PostgreSQL server in /usr/lib/postgresql (%s)", PostgresInstallHint)
	}
	version := func(path string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
		return v
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

// postgresCredential returns the credential to run PostgreSQL with: the postgres
// user's when running as root, none (the current user) otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running PostgreSQL as root is refused, and there is no postgres user: %w (%s)", err, PostgresInstallHint)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// StartPostgres creates the database cluster when Dir has none yet (initdb, with
// PostgresUser as superuser and trust authentication on 127.0.0.1), then starts the
// server and waits until it accepts connections.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.Dir == "" {
		return nil, errors.New("starting postgres: no directory")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	bin := opts.BinDir
	if bin == "" {
		if bin, err = PostgresBinDir(); err != nil {
			return nil, err
		}
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if cred != nil {
		// The server's user must reach its data directory.
		if err := allowTraverse(dir); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := initdb(ctx, bin, data, cred); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	} else if PortOpen(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) {
		return nil, fmt.Errorf("starting postgres: 127.0.0.1:%d is already in use", port)
	}
	maxConns := opts.MaxConnections
	if maxConns <= 0 {
		maxConns = 300
	}
	pg := &Postgres{Host: "127.0.0.1", Port: port, User: PostgresUser, DataDir: data}
	pg.Proc = NewProc(ProcSpec{
		Name: "postgres",
		Path: filepath.Join(bin, "postgres"),
		Args: []string{
			"-D", data,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "port=" + strconv.Itoa(port),
			"-c", "unix_socket_directories=" + data,
			"-c", "max_connections=" + strconv.Itoa(maxConns),
			"-c", "shared_buffers=128MB",
			// A development cluster: durability across machine crashes is not needed,
			// durability across a killed server is (the WAL is still written).
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", "logging_collector=off",
			"-c", "log_min_messages=warning",
		},
		LogFile:    opts.LogFile,
		Output:     opts.Output,
		Credential: cred,
		ReadyCheck: func(ctx context.Context) error {
			return postgresReady(ctx, bin, pg)
		},
		StartTimeout: postgresStartTimeout,
		StopTimeout:  postgresStopTimeout,
		// The postmaster's children leave when it does; SIGQUIT is its immediate
		// shutdown.
		DeathSignal: syscall.SIGQUIT,
	})
	if err := pg.Start(ctx); err != nil {
		return nil, err
	}
	return pg, nil
}

// initdb creates a database cluster in data.
func initdb(ctx context.Context, bin, data string, cred *syscall.Credential) error {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", PostgresUser, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync")
	cmd.Dir = data
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", data, err, out)
	}
	return nil
}

// postgresReady reports whether the server accepts connections, with pg_isready when
// it is there (it is part of the client package) and a TCP connect otherwise.
func postgresReady(ctx context.Context, bin string, pg *Postgres) error {
	isReady := filepath.Join(bin, "pg_isready")
	if _, err := os.Stat(isReady); err != nil {
		if !PortOpen(pg.Addr()) {
			return fmt.Errorf("nothing listens on %s yet", pg.Addr())
		}
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, isReady, "-q", "-h", pg.Host, "-p", strconv.Itoa(pg.Port),
		"-U", pg.User, "-d", "postgres").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_isready %s: %w %s", pg.Addr(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// allowTraverse lets other users enter dir and its parent (the stack's directory; a
// directory from os.MkdirTemp is 0700), so that the postgres user reaches a directory
// below dir. Further ancestors are left alone; one that others may not enter is an
// error.
func allowTraverse(dir string) error {
	for i, d := 0, dir; ; i, d = i+1, filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if i > 1 {
				return fmt.Errorf("the postgres user cannot enter %s to reach %s; choose a directory it can reach", d, dir)
			}
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("letting the postgres user reach %s: %w", dir, err)
			}
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}
