package ec2sim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultRegion              = "us-east-1"
	DefaultOwnerID             = "123456789012"
	DefaultTerminatedRetention = time.Hour
	// DefaultNodeTag is the tag Nodepool-style launchers put the node id in.
	DefaultNodeTag = "nodepool_node_id"
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes = 1 << 20
)

// ErrorRates are the fractions (0..1) of calls answered with an injected error.
type ErrorRates struct {
	// Throttle applies to every API call: RequestLimitExceeded (HTTP 503), or
	// ThrottlingException for Service Quotas.
	Throttle float64 `json:"throttle,omitempty"`
	// Internal applies to every API call: InternalError (HTTP 500).
	Internal float64 `json:"internal,omitempty"`
	// Capacity applies to RunInstances: InsufficientInstanceCapacity (HTTP 500); to
	// each instance type a CreateFleet tries, as an error of its answer; and to
	// AllocateHosts: InsufficientHostCapacity.
	Capacity float64 `json:"capacity,omitempty"`
	// Quota applies to RunInstances: VcpuLimitExceeded (HTTP 400).
	Quota float64 `json:"quota,omitempty"`
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Region is reported on availability zones; default DefaultRegion.
	Region string
	// AZs are the availability zones; default Region plus "a", "b", "c".
	AZs []string
	// OwnerID is the account id; default DefaultOwnerID.
	OwnerID string
	// Seed seeds the random source of injected errors.
	Seed uint64
	// BootTime is how long an instance stays pending before it runs.
	BootTime time.Duration
	// TerminateTime is how long an instance stays shutting-down before it is terminated.
	TerminateTime time.Duration
	// TerminatedRetention is how long terminated instances stay visible; default
	// DefaultTerminatedRetention (EC2 keeps them for about an hour).
	TerminatedRetention time.Duration
	// ListingLag hides instances younger than this from DescribeInstances calls that
	// do not name instance ids, as EC2's eventually consistent listings do.
	ListingLag time.Duration
	// Errors are the injected error rates.
	Errors ErrorRates
	// VCPULimits maps vCPU quota codes (e.g. "L-1216C47A") to limits. RunInstances
	// fails with VcpuLimitExceeded (or MaxSpotInstanceCountExceeded for spot) when the
	// vCPUs of live instances under the code would exceed it, and ListServiceQuotas
	// reports them. Absent codes are unlimited.
	VCPULimits map[string]int
	// NodeTag is the instance tag whose value names the node an instance was launched
	// for; creations are counted per value (see CreationsByNode). Default
	// DefaultNodeTag.
	NodeTag string
	// InstanceTypes and Images replace the default catalogues when not empty.
	InstanceTypes []InstanceType
	Images        []Image
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Logger receives one debug record per call; default discards.
	Logger *slog.Logger
}

// Server is an EC2-compatible endpoint. It is safe for concurrent use.
type Server struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	types  map[string]InstanceType
	images map[string]Image

	mu         sync.Mutex
	rng        *rand.Rand
	seq        uint64
	instances  map[string]*instance
	order      []string // instance ids in creation order
	volumes    map[string]*volume
	volOrder   []string
	tokens     map[string]*reservation
	publicUsed map[string]bool
	publicNext int
	calls      map[string]int64
	errs       map[string]int64
	inject     map[string][]string // action → codes to answer with, in order
	blocked    map[offering]bool
	delays     map[string]time.Duration
	limits     map[string]int
	rates      ErrorRates
	created    int64
	// createdByNode counts the instances ever launched per value of the node tag.
	createdByNode map[string]int64
	// liveByNode and peakByNode count, per node, the instances not yet terminated and
	// the most there ever were at once.
	liveByNode, peakByNode map[string]int64

	hosts      map[string]*host
	hostOrder  []string // host ids in allocation order
	hostTokens map[string]*hostToken
	hostLimits map[string]int // instance family → hosts
	templates  map[string]*launchTemplate
	fleets     map[string]*fleetToken // client token → the first answer
}

type offering struct{ instanceType, market string }

// New returns a Server with the given options.
func New(opts Options) *Server {
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if len(opts.AZs) == 0 {
		opts.AZs = []string{opts.Region + "a", opts.Region + "b", opts.Region + "c"}
	}
	if opts.OwnerID == "" {
		opts.OwnerID = DefaultOwnerID
	}
	if opts.NodeTag == "" {
		opts.NodeTag = DefaultNodeTag
	}
	if opts.TerminatedRetention == 0 {
		opts.TerminatedRetention = DefaultTerminatedRetention
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.InstanceTypes) == 0 {
		opts.InstanceTypes = DefaultInstanceTypes
	}
	if len(opts.Images) == 0 {
		opts.Images = DefaultImages
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		now:        opts.Clock,
		types:      map[string]InstanceType{},
		images:     map[string]Image{},
		rng:        rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		instances:  map[string]*instance{},
		volumes:    map[string]*volume{},
		tokens:     map[string]*reservation{},
		publicUsed: map[string]bool{},
		calls:      map[string]int64{},
		errs:       map[string]int64{},
		inject:     map[string][]string{},
		blocked:    map[offering]bool{},
		delays:     map[string]time.Duration{},
		limits:     map[string]int{},
		rates:      opts.Errors,

		createdByNode: map[string]int64{},
		liveByNode:    map[string]int64{},
		peakByNode:    map[string]int64{},

		hosts:      map[string]*host{},
		hostTokens: map[string]*hostToken{},
		hostLimits: map[string]int{},
		templates:  map[string]*launchTemplate{},
		fleets:     map[string]*fleetToken{},
	}
	for _, t := range opts.InstanceTypes {
		s.types[t.Name] = t
	}
	for _, im := range opts.Images {
		s.images[im.ID] = im
	}
	for k, v := range opts.VCPULimits {
		s.limits[k] = v
	}
	return s
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Calls counts API calls by operation name, failed ones included.
	Calls map[string]int64 `json:"calls"`
	// Errors counts error answers by error code.
	Errors map[string]int64 `json:"errors"`
	// Instances counts known instances by state.
	Instances map[string]int `json:"instances"`
	// Volumes counts volumes by status.
	Volumes map[string]int `json:"volumes"`
	// Hosts counts dedicated hosts by state (absent when there are none).
	Hosts map[string]int `json:"hosts,omitempty"`
	// Created counts the instances ever launched.
	Created int64 `json:"created"`
	// NodesCreated counts the node tag values any instance was launched with,
	// NodesCreatedTwice those with more than one instance, and MaxCreatedPerNode is
	// the most instances launched for one node.
	NodesCreated      int   `json:"nodes_created"`
	NodesCreatedTwice int   `json:"nodes_created_twice"`
	MaxCreatedPerNode int64 `json:"max_created_per_node"`
}

// Stats returns the call counts and the number of instances by state.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.settle(now)
	st := Stats{Calls: map[string]int64{}, Errors: map[string]int64{}, Instances: map[string]int{}, Volumes: map[string]int{}}
	for k, v := range s.calls {
		st.Calls[k] = v
	}
	for k, v := range s.errs {
		st.Errors[k] = v
	}
	for _, in := range s.instances {
		st.Instances[s.stateOf(in, now)]++
	}
	for _, v := range s.volumes {
		st.Volumes[v.status]++
	}
	for _, h := range s.hosts {
		if st.Hosts == nil {
			st.Hosts = map[string]int{}
		}
		st.Hosts[h.state()]++
	}
	st.Created = s.created
	st.NodesCreated = len(s.createdByNode)
	for _, n := range s.createdByNode {
		if n > 1 {
			st.NodesCreatedTwice++
		}
		st.MaxCreatedPerNode = max(st.MaxCreatedPerNode, n)
	}
	return st
}

// CreationsByNode returns, per value of the node tag, how many instances were ever
// launched with it, terminated ones included.
func (s *Server) CreationsByNode() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.createdByNode))
	for k, v := range s.createdByNode {
		out[k] = v
	}
	return out
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
	for action, d := range s.delays {
		if d > 0 {
			if f.Delays == nil {
				f.Delays = map[string]float64{}
			}
			f.Delays[action] = d.Seconds()
		}
	}
	return f
}

// SetFaults replaces the error rates and the delays of every operation. The zero value
// turns every fault off (one-shot injected errors stay queued).
func (s *Server) SetFaults(f Faults) error {
	for _, r := range []float64{f.Errors.Throttle, f.Errors.Internal, f.Errors.Capacity, f.Errors.Quota} {
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("error rate %v is not a fraction between 0 and 1", r)
		}
	}
	delays := map[string]time.Duration{}
	for action, d := range f.Delays {
		if !(d >= 0 && d <= 3600) {
			return fmt.Errorf("delay of %s: %v is not between 0 and 3600 seconds", action, d)
		}
		delays[action] = time.Duration(d * float64(time.Second))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates = f.Errors
	s.delays = delays
	return nil
}

// Calls returns how many calls of one operation the server answered.
func (s *Server) Calls(action string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// ResetStats clears the call and error counts.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int64{}
	s.errs = map[string]int64{}
}

// InjectError makes the next count calls of action fail with code (an EC2 error code
// such as "InsufficientInstanceCapacity", or a Service Quotas exception name).
func (s *Server) InjectError(action, code string, count int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range count {
		s.inject[action] = append(s.inject[action], code)
	}
}

// BlockOffering makes launches of instanceType in market ("spot" or "on-demand") fail
// with InsufficientInstanceCapacity while blocked is true: RunInstances answers with
// the error, CreateFleet lists it among its errors and tries its next instance type.
// The market "host" makes AllocateHosts of the type fail with
// InsufficientHostCapacity.
func (s *Server) BlockOffering(instanceType, market string, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if blocked {
		s.blocked[offering{instanceType, market}] = true
	} else {
		delete(s.blocked, offering{instanceType, market})
	}
}

// SetDelay makes the server wait d after handling each call of action and before
// answering it, to simulate a slow response (a client timing out after the call took
// effect).
func (s *Server) SetDelay(action string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[action] = d
}

// SetVCPULimit sets the vCPU limit of a quota code; a negative n removes it.
func (s *Server) SetVCPULimit(code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 {
		delete(s.limits, code)
		return
	}
	s.limits[code] = n
}

// ServeHTTP answers EC2 Query API and Service Quotas calls, and the /_stats and
// /_inject endpoints.
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
	case r.URL.Path == "/_creations/peak-live" && r.Method == http.MethodGet:
		s.mu.Lock()
		peak := maps.Clone(s.peakByNode)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, peak)
		return
	case strings.HasPrefix(r.URL.Path, "/_"):
		http.NotFound(w, r)
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		s.serveJSON(w, r, target)
		return
	}
	s.serveQuery(w, r)
}

func (s *Server) serveInject(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "parsing form: "+err.Error(), http.StatusBadRequest)
		return
	}
	action, code := r.PostForm.Get("action"), r.PostForm.Get("code")
	count := 1
	if c := r.PostForm.Get("count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			http.Error(w, "count must be a positive integer", http.StatusBadRequest)
			return
		}
		count = n
	}
	if action == "" || code == "" {
		http.Error(w, "action and code are required", http.StatusBadRequest)
		return
	}
	s.InjectError(action, code, count)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	body, err := readAll(w, r)
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var f Faults
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		http.Error(w, "decoding faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.SetFaults(f); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

// handler answers one Query API action; the returned value is marshalled as XML.
type handler func(s *Server, p params, now time.Time) (any, *apiError)

var handlers = map[string]handler{
	"RunInstances":              (*Server).runInstances,
	"DescribeInstances":         (*Server).describeInstances,
	"TerminateInstances":        (*Server).terminateInstances,
	"DescribeInstanceTypes":     (*Server).describeInstanceTypes,
	"DescribeImages":            (*Server).describeImages,
	"DescribeVolumes":           (*Server).describeVolumes,
	"CreateVolume":              (*Server).createVolume,
	"DeleteVolume":              (*Server).deleteVolume,
	"CreateTags":                (*Server).createTags,
	"DescribeAvailabilityZones": (*Server).describeAvailabilityZones,
	"AllocateHosts":             (*Server).allocateHosts,
	"DescribeHosts":             (*Server).describeHosts,
	"ReleaseHosts":              (*Server).releaseHosts,
	"CreateLaunchTemplate":      (*Server).createLaunchTemplate,
	"DescribeLaunchTemplates":   (*Server).describeLaunchTemplates,
	"DeleteLaunchTemplate":      (*Server).deleteLaunchTemplate,
	"CreateFleet":               (*Server).createFleet,
}

func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	if err := r.ParseForm(); err != nil {
		s.writeXMLError(w, "", newError("MalformedQueryString", "parsing request: %v", err))
		return
	}
	action := r.Form.Get("Action")
	h, ok := handlers[action]

	s.mu.Lock()
	s.seq++
	reqID := requestID(s.seq)
	if action != "" {
		s.calls[action]++
	}
	var (
		out  any
		aerr *apiError
	)
	now := s.now()
	switch {
	case action == "":
		aerr = missingParameter("Action")
	case !ok:
		aerr = newError("InvalidAction", "The action %s is not valid for this web service.", action)
	default:
		if aerr = s.injected(action, r.Form.Get("ClientToken")); aerr == nil {
			s.settle(now)
			out, aerr = h(s, newParams(r.Form), now)
		}
	}
	if aerr != nil {
		s.errs[aerr.Code]++
	}
	delay := s.delays[action]
	s.mu.Unlock()

	s.log.Debug("ec2 call", "action", action, "request_id", reqID, "error", errCode(aerr))
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	if aerr != nil {
		s.writeXMLError(w, reqID, aerr)
		return
	}
	setRequestID(out, reqID)
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(out); err != nil {
		s.writeXMLError(w, reqID, newError("InternalError", "encoding response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-RequestId", reqID)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

func errCode(e *apiError) string {
	if e == nil {
		return ""
	}
	return e.Code
}

func (s *Server) writeXMLError(w http.ResponseWriter, reqID string, e *apiError) {
	body, err := xml.Marshal(xmlErrorResponse{Errors: []xmlError{{Code: e.Code, Message: e.Message}}, RequestID: reqID})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status())
	_, _ = w.Write(append([]byte(xml.Header), body...))
}

// injected returns the error to answer action with, if any: a one-shot injected code
// first, then the configured random rates. Capacity and quota errors are launch
// failures: a RunInstances that repeats a client token the server already launched
// with gets the first call's instances instead, as EC2 answers it. Callers hold s.mu.
func (s *Server) injected(action, clientToken string) *apiError {
	if codes := s.inject[action]; len(codes) > 0 {
		s.inject[action] = codes[1:]
		return &apiError{Code: codes[0], Message: defaultMessage(codes[0])}
	}
	rates := s.rates
	if rates.Throttle > 0 && s.rng.Float64() < rates.Throttle {
		return &apiError{Code: "RequestLimitExceeded", Message: defaultMessage("RequestLimitExceeded")}
	}
	if rates.Internal > 0 && s.rng.Float64() < rates.Internal {
		return &apiError{Code: "InternalError", Message: defaultMessage("InternalError")}
	}
	if _, repeat := s.tokens[clientToken]; action == "RunInstances" && !(clientToken != "" && repeat) {
		if rates.Capacity > 0 && s.rng.Float64() < rates.Capacity {
			return &apiError{Code: "InsufficientInstanceCapacity", Message: defaultMessage("InsufficientInstanceCapacity")}
		}
		if rates.Quota > 0 && s.rng.Float64() < rates.Quota {
			return &apiError{Code: "VcpuLimitExceeded", Message: defaultMessage("VcpuLimitExceeded")}
		}
	}
	return nil
}

func requestID(n uint64) string {
	return fmt.Sprintf("5ec2a000-0000-4000-8000-%012x", n)
}

// setRequestID fills the requestId field of a response struct.
func setRequestID(out any, id string) {
	switch v := out.(type) {
	case *xmlRunInstancesResponse:
		v.RequestID = id
	case *xmlDescribeInstancesResponse:
		v.RequestID = id
	case *xmlTerminateInstancesResponse:
		v.RequestID = id
	case *xmlDescribeInstanceTypesResponse:
		v.RequestID = id
	case *xmlDescribeImagesResponse:
		v.RequestID = id
	case *xmlDescribeVolumesResponse:
		v.RequestID = id
	case *xmlCreateVolumeResponse:
		v.RequestID = id
	case *xmlReturnResponse:
		v.RequestID = id
	case *xmlDescribeAvailabilityZonesResponse:
		v.RequestID = id
	case *xmlAllocateHostsResponse:
		v.RequestID = id
	case *xmlDescribeHostsResponse:
		v.RequestID = id
	case *xmlReleaseHostsResponse:
		v.RequestID = id
	case *xmlLaunchTemplateResponse:
		v.RequestID = id
	case *xmlDescribeLaunchTemplatesResponse:
		v.RequestID = id
	case *xmlCreateFleetResponse:
		v.RequestID = id
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readAll reads a bounded request body.
func readAll(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
}
