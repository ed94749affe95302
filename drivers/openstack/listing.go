package openstack

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// server is the part of Nova's detailed server view the driver reads.
type server struct {
	ID        string                    `json:"id"`
	Name      string                    `json:"name"`
	Status    string                    `json:"status"`
	TaskState *string                   `json:"OS-EXT-STS:task_state"`
	AZ        string                    `json:"OS-EXT-AZ:availability_zone"`
	HostID    string                    `json:"hostId"`
	Metadata  map[string]string         `json:"metadata"`
	Addresses map[string][]address      `json:"addresses"`
	Flavor    serverFlavor              `json:"flavor"`
	Fault     *struct{ Message string } `json:"fault"`
	Volumes   []struct {
		ID string `json:"id"`
	} `json:"os-extended-volumes:volumes_attached"`
}

type serverFlavor struct {
	ID           string `json:"id"`
	OriginalName string `json:"original_name"`
	VCPUs        int64  `json:"vcpus"`
	RAM          int64  `json:"ram"`
}

type address struct {
	Addr    string `json:"addr"`
	Version int    `json:"version"`
	Type    string `json:"OS-EXT-IPS:type"`
}

// deleting reports whether the server is on its way out.
func (s *server) deleting() bool {
	return s.Status == "DELETED" || s.Status == "SOFT_DELETED" || (s.TaskState != nil && *s.TaskState == "deleting")
}

// ours reports whether the server belongs to the provider.
func (s *server) ours(provider string) bool { return s.Metadata[drivers.MetaProviderName] == provider }

// listing is a snapshot of the project's servers.
type listing struct {
	// at is when the listing call started.
	at   time.Time
	byID map[string]*server
}

type listCall struct {
	done chan struct{}
	l    *listing
	err  error
}

// serverLister answers "what state is server X in" for every launch and delete of
// the provider from one shared server listing, refreshed at most once per poll
// interval and fetched by one caller at a time, so that the cost of polling does not
// grow with the number of nodes.
type serverLister struct {
	d    *Driver
	mu   sync.Mutex
	last *listing
	call *listCall
}

// get returns a listing younger than the poll interval and not older than since,
// starting a fetch when there is none and joining the fetch in flight if there is
// one.
func (l *serverLister) get(ctx context.Context, since time.Time) (*listing, error) {
	for {
		l.mu.Lock()
		now := l.d.now()
		if l.last != nil && now.Sub(l.last.at) < l.d.opts.pollInterval && !l.last.at.Before(since) {
			last := l.last
			l.mu.Unlock()
			return last, nil
		}
		c := l.call
		if c == nil {
			c = &listCall{done: make(chan struct{})}
			l.call = c
			go l.fetch(c, now)
		}
		l.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, classify(opRead, "waiting for the server listing", ctx.Err())
		}
		if c.err != nil {
			return nil, c.err
		}
		if !c.l.at.Before(since) {
			return c.l, nil
		}
	}
}

// invalidate drops the cached listing, after a change the next reader must see.
func (l *serverLister) invalidate() {
	l.mu.Lock()
	l.last = nil
	l.mu.Unlock()
}

func (l *serverLister) fetch(c *listCall, started time.Time) {
	ctx, cancel := context.WithTimeout(l.d.bg, callTimeout)
	defer cancel()
	list, err := l.d.listServers(ctx, servers.ListOpts{})
	l.mu.Lock()
	if err != nil {
		c.err = err
	} else {
		snap := &listing{at: started, byID: make(map[string]*server, len(list))}
		for i := range list {
			snap.byID[list[i].ID] = &list[i]
		}
		c.l = snap
		if l.last == nil || !started.Before(l.last.at) {
			l.last = snap
		}
	}
	l.call = nil
	l.mu.Unlock()
	close(c.done)
}

// listServers lists the project's servers in detail, following pagination.
func (d *Driver) listServers(ctx context.Context, opts servers.ListOpts) ([]server, error) {
	pages, err := servers.List(d.compute, opts).AllPages(ctx)
	if err != nil {
		return nil, classify(opRead, "listing servers", err)
	}
	var out []server
	if err := servers.ExtractServersInto(pages, &out); err != nil {
		return nil, classify(opRead, "decoding the server listing", err)
	}
	return out, nil
}

// getServer reads one server.
func (d *Driver) getServer(ctx context.Context, id string) (*server, error) {
	var s server
	if err := servers.Get(ctx, d.compute, id).ExtractInto(&s); err != nil {
		return nil, classify(opRead, "reading server "+id, err)
	}
	return &s, nil
}

// ips sorts a server's addresses as upstream does: floating addresses and fixed
// addresses on external networks are public, global IPv6 addresses are public, the
// rest private.
type ips struct{ publicV4, privateV4, publicV6, privateV6 string }

func (d *Driver) serverIPs(s *server, external map[string]bool) ips {
	var out ips
	for netName, addrs := range s.Addresses {
		for _, a := range addrs {
			ip, err := netip.ParseAddr(a.Addr)
			if err != nil {
				continue
			}
			public := a.Type == "floating" || external[netName]
			if ip.Is6() {
				public = public || (ip.IsGlobalUnicast() && !ip.IsPrivate())
				switch {
				case public && out.publicV6 == "":
					out.publicV6 = a.Addr
				case !public && out.privateV6 == "":
					out.privateV6 = a.Addr
				}
				continue
			}
			switch {
			case public && (out.publicV4 == "" || a.Type == "floating"):
				out.publicV4 = a.Addr
			case !public && out.privateV4 == "":
				out.privateV4 = a.Addr
			}
		}
	}
	return out
}

// interfaceIP is the address the launcher reaches the node at: public IPv6 first, as
// upstream prefers it, then public IPv4, then private IPv4.
func (i ips) interfaceIP() string {
	return firstNonEmpty(i.publicV6, i.publicV4, i.privateV4, i.privateV6)
}
