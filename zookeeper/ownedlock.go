package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// maxEnsureRounds bounds EnsureLock's create-and-recheck rounds; each round
// either decides or changes the contender set, so two suffice normally.
const maxEnsureRounds = 5

// EnsureLock makes sure the lock at lockPath is held by owner and reports
// whether it is.
//
// Owner-identified locks belong to an owner string, written as the
// contender's data (kazoo's identifier), not to a session: any process may
// check, assert or release them, which is how a durable workflow keeps a lock
// across worker crashes. Other kazoo users see an ordinary lock.
//
//   - If the lowest contender's data is owner the lock is held: duplicate
//     contenders of owner are removed and EnsureLock returns true. If that
//     lowest contender lives in another session (a crashed or partitioned
//     process that last asserted the lock), one standby contender of owner is
//     kept in this client's session, so that the lock passes to it, not to
//     someone else, when that session ends.
//   - If another contender is lowest, owner's contenders are removed and
//     EnsureLock returns false (it never waits).
//   - If owner has no contender, one is created and the result re-checked.
//
// A missing lock directory is created, except for a node lock whose node is
// gone: then the error wraps ErrNotFound and nothing is created.
//
// Taking a free lock costs three requests: list, create, list again.
func (c *Client) EnsureLock(ctx context.Context, lockPath, owner string) (bool, error) {
	_, held, err := c.EnsureLockContender(ctx, lockPath, owner)
	return held, err
}

// EnsureLockContender is EnsureLock that also returns, when the lock is held, the
// name of owner's holding contender (see RemoveHeldNode).
func (c *Client) EnsureLockContender(ctx context.Context, lockPath, owner string) (string, bool, error) {
	name, held, err := c.ensureLock(ctx, lockPath, owner)
	if err != nil {
		return "", false, fmt.Errorf("locking %s for %s: %w", lockPath, owner, err)
	}
	return name, held, nil
}

func (c *Client) ensureLock(ctx context.Context, lockPath, owner string) (string, bool, error) {
	want := []byte(owner)
	prefix := newContenderPrefix()
	// created is the contender this call created: its data is known.
	var created *contender
	for range maxEnsureRounds {
		cs, err := c.contendersWithData(ctx, lockPath, created)
		if err != nil {
			return "", false, err
		}
		var mine []contender
		for _, ct := range cs {
			if bytes.Equal(ct.data, want) {
				mine = append(mine, ct)
			}
		}
		if len(mine) == 0 {
			name, err := c.newContender(ctx, lockPath, prefix, want)
			if err != nil {
				return "", false, err
			}
			created = &contender{name: name, data: want, ephemeralOwner: c.SessionID()}
			continue
		}
		if !bytes.Equal(cs[0].data, want) {
			// Someone else holds the lock: do not queue behind them.
			return "", false, c.removeContenders(ctx, lockPath, mine)
		}

		holder, extra := mine[0], mine[1:]
		sid := c.SessionID()
		if holder.ephemeralOwner == 0 || holder.ephemeralOwner == sid {
			return holder.name, true, c.removeContenders(ctx, lockPath, extra)
		}
		// The holding contender lives in another session. Keep exactly one
		// standby in ours.
		var standby *contender
		var drop []contender
		for i := range extra {
			if standby == nil && extra[i].ephemeralOwner == sid {
				standby = &extra[i]
				continue
			}
			drop = append(drop, extra[i])
		}
		if err := c.removeContenders(ctx, lockPath, drop); err != nil {
			return holder.name, true, err
		}
		if standby == nil {
			if _, err := c.newContender(ctx, lockPath, prefix, want); err != nil {
				return holder.name, true, err
			}
		}
		return holder.name, true, nil
	}
	return "", false, errors.New("lock contenders kept changing")
}

func (c *Client) removeContenders(ctx context.Context, lockPath string, cs []contender) error {
	for _, ct := range cs {
		if err := c.removeContender(ctx, lockPath, ct.name); err != nil {
			return fmt.Errorf("removing contender %s: %w", ct.name, err)
		}
	}
	return nil
}

// ReleaseOwned releases owner's lock at lockPath by deleting every contender
// whose data is owner, in whatever session it lives. A missing lock is not
// an error.
func (c *Client) ReleaseOwned(ctx context.Context, lockPath, owner string) error {
	cs, err := c.contendersWithData(ctx, lockPath, nil)
	if err != nil {
		return fmt.Errorf("unlocking %s for %s: %w", lockPath, owner, err)
	}
	var mine []contender
	for _, ct := range cs {
		if string(ct.data) == owner {
			mine = append(mine, ct)
		}
	}
	if err := c.removeContenders(ctx, lockPath, mine); err != nil {
		return fmt.Errorf("unlocking %s for %s: %w", lockPath, owner, err)
	}
	return nil
}

// LockHolder reports whether the lock at lockPath is held and the holder's
// identifier (the lowest contender's data; "" for contenders without data,
// such as Zuul's). A missing lock directory is not locked.
func (c *Client) LockHolder(ctx context.Context, lockPath string) (locked bool, owner string, err error) {
	for {
		cs, err := c.contenders(ctx, lockPath)
		if err != nil {
			return false, "", fmt.Errorf("reading lock %s: %w", lockPath, err)
		}
		if len(cs) == 0 {
			return false, "", nil
		}
		data, _, err := c.get(ctx, lockPath+"/"+cs[0].name)
		if mapErr(err) == ErrNotFound {
			continue // released while we looked; look again
		}
		if err != nil {
			return false, "", fmt.Errorf("reading lock %s: %w", lockPath, err)
		}
		return true, string(data), nil
	}
}

// IsLocked reports whether the lock directory has any contender. As Zuul and
// Nodepool do, any contender counts: a non-blocking attempt in flight is
// treated as a holder.
func (c *Client) IsLocked(ctx context.Context, lockPath string) (bool, error) {
	cs, err := c.contenders(ctx, lockPath)
	if err != nil {
		return false, fmt.Errorf("reading lock %s: %w", lockPath, err)
	}
	return len(cs) > 0, nil
}
