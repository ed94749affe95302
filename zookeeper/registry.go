package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// reregisterRetry is the pause between attempts to restore a registration
// after a new session.
const reregisterRetry = time.Second

// Registration is a live pool registration. It is re-created automatically
// when the client gets a new session (the old ephemeral znode died with the
// old session). Its methods are safe for concurrent use.
type Registration struct {
	c      *Client
	remove func()

	mu      sync.Mutex
	comp    PoolComponent
	path    string
	version int32
	session int64
	closed  bool
}

// RegisterPool publishes p as an ephemeral sequential znode
// /nodepool/components/pool/<hostname><seq>, JSON with sorted keys, as
// Nodepool's component registry does. Kind defaults to "pool" and State to
// "running".
func (c *Client) RegisterPool(ctx context.Context, p PoolComponent) (*Registration, error) {
	if p.Hostname == "" {
		return nil, errors.New("registering pool: empty hostname")
	}
	if p.Kind == "" {
		p.Kind = ComponentKindPool
	}
	if p.State == "" {
		p.State = ComponentStateRunning
	}
	p.SupportedLabels = slices.Clone(p.SupportedLabels)
	r := &Registration{c: c, comp: p}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.createLocked(ctx); err != nil {
		return nil, fmt.Errorf("registering pool %s: %w", p.ID, err)
	}
	r.remove = c.addSessionListener(r.restore)
	if c.SessionID() != r.session {
		// The session changed before the listener was in place.
		go r.restore(context.WithoutCancel(ctx))
	}
	return r, nil
}

// RegisterLauncher publishes this launcher process as an ephemeral sequential znode
// /nodepool/components/launcher/<hostname><seq> with hostname, state, kind, version
// and model_api, as every Nodepool launcher process does. Like a pool registration it
// is re-created after a session loss.
func (c *Client) RegisterLauncher(ctx context.Context, hostname, version string) (*Registration, error) {
	return c.RegisterPool(ctx, PoolComponent{Hostname: hostname, Kind: ComponentKindLauncher, Version: version})
}

// createLocked creates a fresh registration znode from r.comp.
func (r *Registration) createLocked(ctx context.Context) error {
	data, err := r.comp.Encode()
	if err != nil {
		return err
	}
	parent := PoolComponentsPath
	if r.comp.Kind == ComponentKindLauncher {
		parent = LauncherComponentsPath
	}
	created, err := r.c.createMakePath(ctx, parent+"/"+r.comp.Hostname, data, zk.FlagEphemeralSequential)
	if err != nil {
		return err
	}
	r.path = created
	r.comp.Path = created
	r.version = 0
	// Record the session that owns the new znode, so that restore knows
	// whether a later session event still concerns it.
	r.session = r.c.SessionID()
	if st, err := r.c.exists(ctx, created); err == nil {
		r.session = st.EphemeralOwner
	}
	return nil
}

// restore re-creates the registration after a session change, retrying
// until it succeeds, the registration is removed or the client closes.
func (r *Registration) restore(ctx context.Context) {
	for {
		done, err := r.restoreOnce(ctx)
		if done {
			return
		}
		r.c.log.Warn("restoring pool registration", "pool", r.comp.ID, "error", err)
		select {
		case <-time.After(reregisterRetry):
		case <-r.c.closed:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (r *Registration) restoreOnce(ctx context.Context) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return true, nil
	}
	sid := r.c.SessionID()
	if sid == 0 {
		return false, errors.New("no session")
	}
	if sid == r.session {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	old := r.path
	if err := r.createLocked(ctx); err != nil {
		return false, err
	}
	r.c.log.Info("restored pool registration", "pool", r.comp.ID, "path", r.path, "previous", old)
	return true, nil
}

// Path returns the registration's current znode path (it changes when the
// registration is re-created).
func (r *Registration) Path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.path
}

// Component returns the published registration.
func (r *Registration) Component() PoolComponent {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.comp
	p.SupportedLabels = slices.Clone(p.SupportedLabels)
	return p
}

// SetPaused publishes whether the pool is paused.
func (r *Registration) SetPaused(ctx context.Context, paused bool) error {
	return r.Update(ctx, func(p *PoolComponent) { p.Paused = paused })
}

// Update applies fn to a copy of the registration and writes the result with
// a version check, only if something changed. If the znode vanished with a
// lost session it is re-created with the new content.
func (r *Registration) Update(ctx context.Context, fn func(*PoolComponent)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("updating pool registration: unregistered")
	}
	next := r.comp
	next.SupportedLabels = slices.Clone(r.comp.SupportedLabels)
	fn(&next)
	next.Path = r.comp.Path
	if reflect.DeepEqual(next, r.comp) {
		return nil
	}
	prev := r.comp
	r.comp = next
	if err := r.writeLocked(ctx); err != nil {
		r.comp = prev
		return fmt.Errorf("updating pool registration %s: %w", r.path, err)
	}
	return nil
}

// writeLocked stores r.comp at r.path, refreshing the version once on a
// conflict and re-creating the znode if it is gone.
func (r *Registration) writeLocked(ctx context.Context) error {
	data, err := r.comp.Encode()
	if err != nil {
		return err
	}
	for range 2 {
		stat, err := r.c.set(ctx, r.path, data, r.version)
		switch {
		case err == nil:
			r.version = stat.Version
			return nil
		case errors.Is(err, zk.ErrNoNode):
			return r.createLocked(ctx)
		case errors.Is(err, zk.ErrBadVersion):
			st, serr := r.c.exists(ctx, r.path)
			if errors.Is(serr, zk.ErrNoNode) {
				return r.createLocked(ctx)
			}
			if serr != nil {
				return serr
			}
			r.version = st.Version
		default:
			return err
		}
	}
	return ErrBadVersion
}

// Unregister deletes the registration and stops restoring it.
func (r *Registration) Unregister(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.remove()
	err := r.c.delete(ctx, r.path, -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("unregistering pool %s: %w", r.path, err)
	}
	return nil
}

// ListPools returns every pool registration, sorted by path. Entries that do
// not parse are logged and skipped; entries that vanish while being read are
// skipped.
func (c *Client) ListPools(ctx context.Context) ([]PoolComponent, error) {
	names, err := c.listChildren(ctx, PoolComponentsPath)
	if err != nil {
		return nil, fmt.Errorf("listing pools: %w", err)
	}
	out := make([]PoolComponent, 0, len(names))
	for _, name := range names {
		comp, _, err := c.readPool(ctx, name)
		if err != nil {
			return nil, err
		}
		if comp != nil {
			out = append(out, *comp)
		}
	}
	return out, nil
}

// PoolIDs returns the ids of the registered pools by registration (the znode's name).
// A registration's id never changes, so ids of registrations in known (the previous
// call's answer) are not read again: with it, a call is one listing plus a read of
// each new registration. A registration that cannot be decoded maps to "" and is
// logged once.
func (c *Client) PoolIDs(ctx context.Context, known map[string]string) (map[string]string, error) {
	names, err := c.listChildren(ctx, PoolComponentsPath)
	if err != nil {
		return nil, fmt.Errorf("listing pools: %w", err)
	}
	out := make(map[string]string, len(names))
	for _, name := range names {
		if id, ok := known[name]; ok {
			out[name] = id
			continue
		}
		comp, exists, err := c.readPool(ctx, name)
		switch {
		case err != nil:
			return nil, err
		case comp != nil:
			out[name] = comp.ID
		case exists:
			out[name] = ""
		}
	}
	return out, nil
}

// readPool reads the pool registration name. One that vanished is (nil, false); one
// that cannot be decoded is logged and (nil, true).
func (c *Client) readPool(ctx context.Context, name string) (comp *PoolComponent, exists bool, err error) {
	p := PoolComponentsPath + "/" + name
	data, _, err := c.get(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("listing pools: reading %s: %w", p, err)
	}
	comp, err = DecodePoolComponent(p, data)
	if err != nil {
		c.log.Warn("skipping pool registration", "path", p, "error", err)
		return nil, true, nil
	}
	return comp, true, nil
}
