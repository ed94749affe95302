package static

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/nodescan"
)

// monitor checks every host at once and then every check interval, until Close.
func (d *Driver) monitor() {
	defer d.wg.Done()
	t := time.NewTicker(d.checkInterval)
	defer t.Stop()
	for {
		d.mu.Lock()
		for _, h := range d.hosts {
			d.startCheckLocked(h, true)
		}
		d.mu.Unlock()
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startCheckLocked starts a check of the host unless one runs. A full check scans the
// host (and collects its keys if it has any) or, without host-key-checking, only
// resolves its name; a port check only connects to its port.
func (d *Driver) startCheckLocked(h *host, full bool) {
	if h.checking || d.ctx.Err() != nil {
		return
	}
	h.checking = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		select {
		case d.checks <- struct{}{}:
		case <-d.ctx.Done():
			d.mu.Lock()
			h.checking = false
			d.mu.Unlock()
			return
		}
		defer func() { <-d.checks }()
		d.check(h, full)
	}()
}

// check runs one check of the host and records its outcome.
func (d *Driver) check(h *host, full bool) {
	n := &h.cfg
	var (
		addrs []netip.Addr
		keys  []string
		err   error
	)
	if full {
		addrs, err = d.resolve(d.ctx, n.Name)
		if err != nil {
			err = fmt.Errorf("resolving %s: %w", n.Name, err)
		}
	}
	if err == nil && h.checked {
		target := nodescan.Target{
			Host:           n.Name,
			Port:           n.EffectiveConnectionPort(),
			ConnectionType: n.EffectiveConnectionType(),
			Timeout:        time.Duration(n.EffectiveTimeout()) * time.Second,
			HostKeys:       full,
		}
		var res nodescan.Result
		res, err = d.scan(d.ctx, target)
		keys = res.Keys
		if err == nil && full && nodescan.GathersKeys(target.ConnectionType) {
			if missing := missingKeys(h.hostKeys, keys); len(missing) > 0 {
				err = fmt.Errorf("host key mismatch: configured %s not among the host's keys %v",
					strings.Join(missing, ", "), keys)
			}
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	h.checking = false
	if d.ctx.Err() != nil {
		return // closing: the outcome says nothing about the host
	}
	was := h.status
	if err != nil {
		h.status, h.reason = statusDown, checkError(err)
		if was != statusDown {
			d.logger.Warn("static node does not answer; its free slots are not offered",
				"host", n.Name, "pool", h.pool, "error", h.reason)
		}
		return
	}
	if !full && was != statusUp {
		// A port check confirms an up host; only a full check brings a host up.
		return
	}
	if full {
		h.addrs = addrs
		if h.checked {
			h.scanned = keys
		}
	}
	h.status, h.reason, h.lastOK = statusUp, "", time.Now()
	if was != statusUp {
		d.logger.Info("static node answers; its slots are offered", "host", n.Name, "pool", h.pool,
			"slots", h.slots, "host_keys", len(h.keysLocked()))
	}
}

// checkError is the reason a failed check gives.
func checkError(err error) string {
	if errors.Is(err, nodescan.ErrTimeout) {
		return "no answer: " + err.Error()
	}
	return err.Error()
}

// missingKeys returns the configured keys that are not among the scanned ones.
func missingKeys(configured, scanned []string) []string {
	var out []string
	for _, k := range configured {
		if !slices.Contains(scanned, k) {
			out = append(out, k)
		}
	}
	return out
}

// lookupHost resolves a host name (an address resolves to itself).
func lookupHost(ctx context.Context, name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{a}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return nil, err
	}
	for i, a := range ips {
		ips[i] = a.Unmap()
	}
	return ips, nil
}
