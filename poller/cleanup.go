package poller

import (
	"context"
	"errors"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

const (
	// cleanupEvery is how many scan intervals pass between cleanups of request lock
	// directories (a minute at the default interval, as Nodepool's cleanup).
	cleanupEvery = 12
	// lockDirMaxAge is how old the lock directory of a vanished request must be before
	// it is removed (Nodepool's LOCK_CLEANUP).
	lockDirMaxAge = 8 * time.Hour
)

// cleanupLoop removes stale request lock directories until ctx ends.
func (p *Poller) cleanupLoop(ctx context.Context) {
	ticker := time.NewTicker(cleanupEvery * p.opts.ScanInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			p.cleanupRequestLocks(ctx)
		}
	}
}

// cleanupRequestLocks removes the lock directories of requests that no longer exist, once
// they are lockDirMaxAge old (by the znode's creation or modification time, whichever is
// later) and have no contender. Zuul never removes them and Nodepool does so only after
// 8 hours, so many lie around; each is read once and its age remembered until then.
func (p *Poller) cleanupRequestLocks(ctx context.Context) {
	ids, err := p.opts.ZK.Children(ctx, zookeeper.RequestLockRoot)
	if errors.Is(err, zookeeper.ErrNotFound) {
		ids = nil
	} else if err != nil {
		p.log.Debug("listing request locks", "error", err)
		return
	}
	now := p.now()
	listed := make(map[string]bool, len(ids))
	removed := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		listed[id] = true
		p.mu.Lock()
		live := p.known[id]
		created, seen := p.lockDirs[id]
		if live {
			delete(p.lockDirs, id)
		}
		p.mu.Unlock()
		if live {
			continue
		}
		path := zookeeper.RequestLockPath(id)
		if !seen {
			_, stat, err := p.opts.ZK.Get(ctx, path)
			if err != nil {
				continue
			}
			created = time.UnixMilli(max(stat.Ctime, stat.Mtime))
			p.mu.Lock()
			p.lockDirs[id] = created
			p.mu.Unlock()
		}
		if now.Sub(created) < lockDirMaxAge {
			continue
		}
		if _, _, err := p.opts.ZK.Get(ctx, zookeeper.RequestPath(id)); !errors.Is(err, zookeeper.ErrNotFound) {
			continue // the request exists (or ZooKeeper could not tell)
		}
		if locked, err := p.opts.ZK.IsLocked(ctx, path); err != nil || locked {
			continue
		}
		if err := p.opts.ZK.DeleteRecursive(ctx, path); err != nil {
			p.log.Warn("removing stale request lock", "request_id", id, "error", err)
			continue
		}
		removed++
		p.mu.Lock()
		delete(p.lockDirs, id)
		p.mu.Unlock()
	}
	p.mu.Lock()
	for id := range p.lockDirs {
		if !listed[id] {
			delete(p.lockDirs, id)
		}
	}
	p.mu.Unlock()
	if removed > 0 {
		p.log.Info("removed lock directories of vanished requests", "count", removed, "older_than", lockDirMaxAge)
	}
}
