package worker

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/config"
	"github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig"
)

// DefaultReloadInterval is how often the configuration files are checked for changes.
const DefaultReloadInterval = 5 * time.Second

// RunReloading runs the launcher like Run and applies changes of its configuration
// files without a restart of the process, as Nodepool does: every interval the files
// are read again; a changed configuration that validates replaces the running one
// (the launcher's workers drain and start again with it, which takes a few seconds),
// and one that does not is refused with its problems in the log while the old one
// stays in force. Launches in flight are not affected: each request workflow carries
// the settings it was planned with.
func RunReloading(ctx context.Context, opts Options, path, securePath string, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sum := fingerprint(path, securePath)
	for {
		rctx, cancel := context.WithCancel(ctx)
		next := make(chan reloaded, 1)
		go func() {
			if r, ok := watchConfig(rctx, path, securePath, sum, interval, logger); ok {
				next <- r
				cancel()
			}
		}()
		err := Run(rctx, opts)
		cancel()
		select {
		case r := <-next:
			if ctx.Err() != nil {
				return err
			}
			logger.Info("configuration reloaded", "path", path)
			opts.Config, sum = r.cfg, r.sum
			continue
		default:
		}
		return err
	}
}

type reloaded struct {
	cfg *config.Config
	sum [sha256.Size]byte
}

// watchConfig checks the files every interval until they differ from sum and hold a
// valid configuration, which it returns. An invalid configuration is logged once per
// change and otherwise ignored.
func watchConfig(ctx context.Context, path, securePath string, sum [sha256.Size]byte, interval time.Duration, logger *slog.Logger) (reloaded, bool) {
	refused := sum
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return reloaded{}, false
		case <-t.C:
		}
		now := fingerprint(path, securePath)
		if now == sum || now == refused {
			continue
		}
		cfg, err := launchconfig.Load(path, securePath)
		if err != nil {
			refused = now
			logger.Error("refusing the changed configuration; the running one stays in force", "path", path)
			problems := config.Problems(err)
			for _, p := range problems {
				logger.Error("configuration problem", "problem", p.Error())
			}
			if len(problems) == 0 {
				logger.Error("configuration problem", "problem", err.Error())
			}
			continue
		}
		return reloaded{cfg: cfg, sum: now}, true
	}
}

// fingerprint hashes the configuration files (a missing secure file counts as
// empty).
func fingerprint(path, securePath string) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range []string{path, securePath} {
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				h.Write([]byte(err.Error()))
			}
			h.Write([]byte{0})
			continue
		}
		_, _ = io.Copy(h, f)
		f.Close()
		h.Write([]byte{0})
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}
