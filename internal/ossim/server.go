package ossim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultRegion   = "RegionOne"
	DefaultTokenTTL = time.Hour
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes = 1 << 20
)

// Kinds of injected errors, for InjectError and the /_inject endpoint.
const (
	// KindRateLimit answers 429 Too Many Requests with a Retry-After header.
	KindRateLimit = "RateLimit"
	// KindOverLimit answers 413 with a Retry-After header, as older Nova's rate
	// limiter did.
	KindOverLimit = "OverLimit"
	// KindInternal answers 500 in the service's fault format (Nova's computeFault).
	KindInternal = "Internal"
	// KindUnavailable answers 503 Service Unavailable.
	KindUnavailable = "Unavailable"
	// KindUnauthorized answers 401 as if the token had expired, so clients
	// authenticate again.
	KindUnauthorized = "Unauthorized"
	// KindQuota answers a CreateServer with Nova's 403 quota error for cores.
	KindQuota = "Quota"
	// KindNoValidHost accepts a CreateServer (202) and puts the server in ERROR with
	// Nova's "No valid host was found" fault, as a scheduling failure does.
	KindNoValidHost = "NoValidHost"
)

// ErrorRates are the fractions (0..1) of calls answered with an injected error.
type ErrorRates struct {
	// RateLimit applies to every API call: 429 with Retry-After.
	RateLimit float64 `json:"rate_limit,omitempty"`
	// Internal applies to every API call: 500 in the service's fault format.
	Internal float64 `json:"internal,omitempty"`
	// Quota applies to CreateServer: 403 "Quota exceeded for cores".
	Quota float64 `json:"quota,omitempty"`
	// NoValidHost applies to CreateServer: the server is accepted, then goes to ERROR
	// with the fault "No valid host was found".
	NoValidHost float64 `json:"no_valid_host,omitempty"`
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Region names the region of every catalog endpoint; default DefaultRegion.
	Region string
	// Seed seeds the random source of injected errors.
	Seed uint64
	// BootTime is how long a server stays in BUILD before it is ACTIVE.
	BootTime time.Duration
	// DeleteTime is how long a deleted server stays listed (with task_state
	// "deleting") before it disappears.
	DeleteTime time.Duration
	// TokenTTL is how long an issued token is valid; default DefaultTokenTTL.
	TokenTTL time.Duration
	// Flavors, Images and Networks replace the default catalogues when not empty.
	Flavors  []Flavor
	Images   []Image
	Networks []Network
	// AZs are the availability zones; default DefaultAZ.
	AZs []string
	// Limits are the compute absolute limits; zero fields take DefaultLimits.
	Limits Limits
	// Errors are the injected error rates.
	Errors ErrorRates
	// SSHAddr, when set (host:port), makes every address of every server the IP of
	// that host, so that a scan for a real sshd there succeeds.
	SSHAddr string
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Logger receives one debug record per call; default discards.
	Logger *slog.Logger
}

// Server is an OpenStack-compatible endpoint. It is safe for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
	flavors  []Flavor
	images   []Image
	networks []Network
	sshIP    netip.Addr

	mu       sync.Mutex
	rng      *rand.Rand
	seq      uint64
	limits   Limits
	rates    ErrorRates
	tokens   map[string]*token
	servers  map[string]*server
	order    []string // server ids in creation order
	ports    map[string]*port
	fips     map[string]*floatingIP
	fipOrder []string
	volumes  map[string]*volume
	volOrder []string
	calls    map[string]int64
	errs     map[string]int64
	inject   map[string][]string // operation → error kinds to answer with, in order
	delays   map[string]time.Duration
	projects map[string]int64 // project name → authentications
	created  int64
	byNode   map[string]int64
	ipNext   map[string]uint32 // network id → allocation cursor
	ipUsed   map[string]bool
}

// New returns a Server with the given options.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if len(opts.Flavors) == 0 {
		opts.Flavors = DefaultFlavors
	}
	if len(opts.Images) == 0 {
		opts.Images = DefaultImages
	}
	if len(opts.Networks) == 0 {
		opts.Networks = DefaultNetworks
	}
	if len(opts.AZs) == 0 {
		opts.AZs = []string{DefaultAZ}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Clock,
		flavors:  slices.Clone(opts.Flavors),
		images:   slices.Clone(opts.Images),
		networks: slices.Clone(opts.Networks),
		rng:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		limits:   opts.Limits.withDefaults(),
		rates:    opts.Errors,
		tokens:   map[string]*token{},
		servers:  map[string]*server{},
		ports:    map[string]*port{},
		fips:     map[string]*floatingIP{},
		volumes:  map[string]*volume{},
		calls:    map[string]int64{},
		errs:     map[string]int64{},
		inject:   map[string][]string{},
		delays:   map[string]time.Duration{},
		projects: map[string]int64{},
		byNode:   map[string]int64{},
		ipNext:   map[string]uint32{},
		ipUsed:   map[string]bool{},
	}
	if opts.SSHAddr != "" {
		host, _, err := net.SplitHostPort(opts.SSHAddr)
		if err != nil {
			host = opts.SSHAddr
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			s.sshIP = ip
		} else {
			s.log.Warn("ignoring SSHAddr that is not an IP address", "ssh_addr", opts.SSHAddr)
		}
	}
	s.mux = s.routes()
	return s
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Calls counts API calls by operation name, failed ones included.
	Calls map[string]int64 `json:"calls"`
	// Errors counts error answers by kind (injected kinds, and "Quota", "NotFound",
	// "BadRequest", "Unauthorized"... for genuine ones).
	Errors map[string]int64 `json:"errors"`
	// Servers counts known servers by status (servers being deleted count under
	// "DELETING").
	Servers map[string]int `json:"servers"`
	// FloatingIPs counts floating IPs; FloatingIPsAttached those bound to a port.
	FloatingIPs         int `json:"floating_ips"`
	FloatingIPsAttached int `json:"floating_ips_attached"`
	// Volumes counts volumes by status.
	Volumes map[string]int `json:"volumes"`
	// Projects counts authentications by project name.
	Projects map[string]int64 `json:"projects"`
	// Created counts the servers ever created through the API.
	Created int64 `json:"created"`
	// NodesCreated counts the nodepool_node_id values any server was created with,
	// NodesCreatedTwice those with more than one server, and MaxCreatedPerNode is the
	// most servers created for one node.
	NodesCreated      int   `json:"nodes_created"`
	NodesCreatedTwice int   `json:"nodes_created_twice"`
	MaxCreatedPerNode int64 `json:"max_created_per_node"`
}

// Stats returns the call counts and the resources by status.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.settle(now)
	st := Stats{
		Calls: maps.Clone(s.calls), Errors: maps.Clone(s.errs), Servers: map[string]int{},
		Volumes: map[string]int{}, Projects: maps.Clone(s.projects), Created: s.created,
	}
	for _, sv := range s.servers {
		if sv.deleting() {
			st.Servers["DELETING"]++
		} else {
			st.Servers[s.status(sv, now)]++
		}
	}
	for _, f := range s.fips {
		st.FloatingIPs++
		if f.portID != "" {
			st.FloatingIPsAttached++
		}
	}
	for _, v := range s.volumes {
		st.Volumes[v.status]++
	}
	st.NodesCreated = len(s.byNode)
	for _, n := range s.byNode {
		if n > 1 {
			st.NodesCreatedTwice++
		}
		st.MaxCreatedPerNode = max(st.MaxCreatedPerNode, n)
	}
	return st
}

// Calls returns how many calls of one operation the server answered.
func (s *Server) Calls(op string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// ResetStats clears the call and error counts.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int64{}
	s.errs = map[string]int64{}
}

// Projects returns the names of the projects clients authenticated to, sorted.
func (s *Server) Projects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.projects))
}

// CreationsByNode returns, per value of the nodepool_node_id metadata, how many
// servers were ever created with it, deleted ones included.
func (s *Server) CreationsByNode() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.byNode)
}

// Faults are the fault settings that can change while the server runs.
type Faults struct {
	// Errors are the injected error rates.
	Errors ErrorRates `json:"errors"`
	// Delays are response delays in seconds by operation (see SetDelay).
	Delays map[string]float64 `json:"delays,omitempty"`
}

// Faults returns the current error rates and delays.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := Faults{Errors: s.rates}
	for op, d := range s.delays {
		if d > 0 {
			if f.Delays == nil {
				f.Delays = map[string]float64{}
			}
			f.Delays[op] = d.Seconds()
		}
	}
	return f
}

// SetFaults replaces the error rates and the delays of every operation. The zero value
// turns every fault off (one-shot injected errors stay queued).
func (s *Server) SetFaults(f Faults) error {
	for _, r := range []float64{f.Errors.RateLimit, f.Errors.Internal, f.Errors.Quota, f.Errors.NoValidHost} {
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("error rate %v is not a fraction between 0 and 1", r)
		}
	}
	delays := map[string]time.Duration{}
	for op, d := range f.Delays {
		if !(d >= 0 && d <= 3600) {
			return fmt.Errorf("delay of %s: %v is not between 0 and 3600 seconds", op, d)
		}
		delays[op] = time.Duration(d * float64(time.Second))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates = f.Errors
	s.delays = delays
	return nil
}

// InjectError makes the next count calls of op fail with kind (one of the Kind
// constants; KindQuota and KindNoValidHost only make sense for "CreateServer").
func (s *Server) InjectError(op, kind string, count int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range count {
		s.inject[op] = append(s.inject[op], kind)
	}
}

// SetDelay makes the server wait d after handling each call of op and before
// answering it, to simulate a slow response (a client timing out after the call took
// effect).
func (s *Server) SetDelay(op string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[op] = d
}

// SetLimits replaces the compute absolute limits; zero fields take DefaultLimits and
// -1 means unlimited.
func (s *Server) SetLimits(l Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = l.withDefaults()
}

// ExpireTokens invalidates every issued token, so the next call of each client is
// answered 401 and the client authenticates again.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// AddUnmanagedServer adds an ACTIVE server that was not created by Nodepool (it has no
// nodepool_* metadata). It counts against the limits with the size of flavor (a name
// or an id); an unknown flavor counts only as an instance.
func (s *Server) AddUnmanagedServer(name, flavor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	fl, ok := s.findFlavor(flavor)
	if !ok {
		fl = Flavor{ID: flavor, Name: flavor}
	}
	sv := &server{
		id: s.newID(), name: name, projectID: projectID(DefaultProject), flavor: fl, imageID: s.images[0].ID,
		az: s.opts.AZs[0], secGroups: []string{"default"}, metadata: map[string]string{}, created: now, bootAt: now,
	}
	s.attach(sv, s.defaultNetworks(), now)
	s.servers[sv.id] = sv
	s.order = append(s.order, sv.id)
}

// ServeHTTP answers the OpenStack APIs and the /_stats, /_faults, /_inject,
// /_creations and /_tokens/expire endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_stats" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Stats())
		return
	case r.URL.Path == "/_stats/reset" && r.Method == http.MethodPost,
		r.URL.Path == "/_stats" && r.Method == http.MethodDelete:
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
		return
	case r.URL.Path == "/_inject" && r.Method == http.MethodPost:
		s.serveInject(w, r)
		return
	case r.URL.Path == "/_faults" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Faults())
		return
	case r.URL.Path == "/_faults" && r.Method == http.MethodPut:
		s.serveFaults(w, r)
		return
	case r.URL.Path == "/_creations" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.CreationsByNode())
		return
	case r.URL.Path == "/_limits" && r.Method == http.MethodPut:
		s.serveLimits(w, r)
		return
	case r.URL.Path == "/_tokens/expire" && r.Method == http.MethodPost:
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
		return
	case strings.HasPrefix(r.URL.Path, "/_"):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such admin endpoint: " + r.URL.Path})
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) serveInject(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "parsing form: "+err.Error(), http.StatusBadRequest)
		return
	}
	op, kind := r.PostForm.Get("op"), r.PostForm.Get("kind")
	count := 1
	if c := r.PostForm.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			http.Error(w, "count must be a positive integer", http.StatusBadRequest)
			return
		}
		count = n
	}
	if op == "" || kind == "" {
		http.Error(w, "op and kind are required", http.StatusBadRequest)
		return
	}
	if !slices.Contains(injectableKinds, kind) {
		http.Error(w, fmt.Sprintf("unknown kind %q (want one of %s)", kind, strings.Join(injectableKinds, ", ")), http.StatusBadRequest)
		return
	}
	s.InjectError(op, kind, count)
	w.WriteHeader(http.StatusNoContent)
}

var injectableKinds = []string{KindRateLimit, KindOverLimit, KindInternal, KindUnavailable, KindUnauthorized, KindQuota, KindNoValidHost}

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := decodeStrict(w, r, &f); err != nil {
		http.Error(w, "decoding faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.SetFaults(f); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

func (s *Server) serveLimits(w http.ResponseWriter, r *http.Request) {
	var l Limits
	if err := decodeStrict(w, r, &l); err != nil {
		http.Error(w, "decoding limits: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.SetLimits(l)
	s.mu.Lock()
	l = s.limits
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, l)
}

func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
