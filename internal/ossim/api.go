package ossim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Path prefixes of the services, as advertised in the catalog.
const (
	identityPrefix = "/identity"
	computePrefix  = "/compute/v2.1"
	imagePrefix    = "/image"
	networkPrefix  = "/networking"
	volumePrefix   = "/volume/v3"
)

// Compute microversions the endpoint claims to support.
const (
	minMicroversion = "2.1"
	maxMicroversion = "2.96"
)

type service int

const (
	svcIdentity service = iota
	svcCompute
	svcImage
	svcNetwork
	svcVolume
)

// call is one API request being answered, under s.mu.
type call struct {
	r    *http.Request
	body []byte
	now  time.Time
	tok  *token
	base string // scheme://host of the request, for links and the catalog
	// noValidHost is set when a NoValidHost error was injected into a CreateServer.
	noValidHost bool
}

func (c *call) query(name string) string { return c.r.URL.Query().Get(name) }

// decode unmarshals the request body.
func (c *call) decode(v any) *apiError {
	if len(c.body) == 0 {
		return badRequest("The request body is missing.")
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		return badRequest(fmt.Sprintf("Malformed request body: %v", err))
	}
	return nil
}

// result is a successful answer.
type result struct {
	status int
	body   any
	header map[string]string
}

func ok(body any) (*result, *apiError) { return &result{status: http.StatusOK, body: body}, nil }

func noContent() (*result, *apiError) { return &result{status: http.StatusNoContent}, nil }

// apiError is an error answered in the service's own error format.
type apiError struct {
	status int
	// kind names the error in Stats.Errors and in Neutron's error type.
	kind       string
	message    string
	retryAfter int
}

func newError(status int, kind, message string) *apiError {
	return &apiError{status: status, kind: kind, message: message}
}

func badRequest(msg string) *apiError { return newError(http.StatusBadRequest, "BadRequest", msg) }

func notFound(kind, msg string) *apiError { return newError(http.StatusNotFound, kind, msg) }

func conflict(kind, msg string) *apiError { return newError(http.StatusConflict, kind, msg) }

func unauthorized() *apiError {
	return newError(http.StatusUnauthorized, "Unauthorized", "The request you have made requires authentication.")
}

// handler answers one operation; it runs under s.mu.
type handler func(s *Server, c *call) (*result, *apiError)

// route describes one operation of the API.
type route struct {
	pattern string
	op      string
	svc     service
	public  bool // answered without a token
	h       handler
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	var all []route
	all = append(all, identityRoutes...)
	all = append(all, computeRoutes...)
	all = append(all, imageRoutes...)
	all = append(all, networkRoutes...)
	all = append(all, volumeRoutes...)
	for _, rt := range all {
		mux.Handle(rt.pattern, s.wrap(rt))
	}
	mux.HandleFunc("/", s.serveUnknown)
	return mux
}

func (s *Server) serveUnknown(w http.ResponseWriter, r *http.Request) {
	svc, ok := serviceOf(r.URL.Path)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
			"code": http.StatusNotFound, "title": "Not Found", "message": "No service at " + r.URL.Path + ".",
		}})
		return
	}
	s.writeError(w, svc, notFound("NotFound", "The resource could not be found."))
}

func serviceOf(path string) (service, bool) {
	for _, p := range []struct {
		prefix string
		svc    service
	}{
		{identityPrefix, svcIdentity}, {"/compute", svcCompute}, {imagePrefix, svcImage},
		{networkPrefix, svcNetwork}, {"/volume", svcVolume},
	} {
		if path == p.prefix || strings.HasPrefix(path, p.prefix+"/") {
			return p.svc, true
		}
	}
	return 0, false
}

// wrap turns a route into an http.Handler: it counts the call, checks the token,
// injects errors, runs the handler under the lock, delays the answer and writes it.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
		if err != nil {
			s.writeError(w, rt.svc, badRequest("reading request body: "+err.Error()))
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		s.mu.Lock()
		s.calls[rt.op]++
		c := &call{r: r, body: body, now: s.now(), base: scheme + "://" + r.Host}
		var (
			res  *result
			aerr *apiError
		)
		if !rt.public {
			tok := s.tokens[r.Header.Get("X-Auth-Token")]
			if tok == nil || !c.now.Before(tok.expires) {
				aerr = unauthorized()
			}
			c.tok = tok
		}
		if aerr == nil && rt.svc == svcCompute && !rt.public {
			aerr = checkMicroversion(microversion(r))
		}
		if aerr == nil {
			aerr = s.injected(rt, c)
		}
		if aerr == nil {
			s.settle(c.now)
			res, aerr = rt.h(s, c)
		}
		if aerr != nil {
			s.errs[aerr.kind]++
		}
		delay := s.delays[rt.op]
		reqID := "req-" + s.newID()
		s.mu.Unlock()

		status := 0
		switch {
		case aerr != nil:
			status = aerr.status
		case res != nil:
			status = res.status
		}
		s.log.Debug("openstack call", "op", rt.op, "method", r.Method, "path", r.URL.Path, "request_id", reqID,
			"status", status, "error", errKind(aerr))
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		if rt.svc == svcCompute {
			v := microversion(r)
			w.Header().Set("X-OpenStack-Nova-API-Version", v)
			w.Header().Set("OpenStack-API-Version", "compute "+v)
			w.Header().Add("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")
		}
		w.Header().Set("X-Openstack-Request-Id", reqID)
		if aerr != nil {
			s.writeError(w, rt.svc, aerr)
			return
		}
		for k, v := range res.header {
			w.Header().Set(k, v)
		}
		if res.body == nil {
			w.WriteHeader(res.status)
			return
		}
		writeJSON(w, res.status, res.body)
	})
}

func errKind(e *apiError) string {
	if e == nil {
		return ""
	}
	return e.kind
}

// microversion returns the compute microversion a request asked for ("2.1" when it
// did not ask; the maximum for "latest").
func microversion(r *http.Request) string {
	v := r.Header.Get("X-OpenStack-Nova-API-Version")
	if h := r.Header.Get("OpenStack-API-Version"); h != "" {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(h), "compute "); ok {
			v = strings.TrimSpace(rest)
		}
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return minMicroversion
	case "latest":
		return maxMicroversion
	}
	return strings.TrimSpace(v)
}

// checkMicroversion refuses compute microversions outside the supported range as Nova
// does: 400 for a malformed one, 406 for an unsupported one.
func checkMicroversion(v string) *apiError {
	major, minor, found := strings.Cut(v, ".")
	maj, err1 := strconv.Atoi(major)
	mnr, err2 := strconv.Atoi(minor)
	if !found || err1 != nil || err2 != nil {
		return badRequest(fmt.Sprintf("Invalid format for API version %s. Expected format MajorNum.MinorNum.", v))
	}
	_, maxMinor, _ := strings.Cut(maxMicroversion, ".")
	top, _ := strconv.Atoi(maxMinor)
	if maj != 2 || mnr < 1 || mnr > top {
		return newError(http.StatusNotAcceptable, "NotAcceptable", fmt.Sprintf(
			"Version %s is not supported by the API. Minimum is %s and maximum is %s.", v, minMicroversion, maxMicroversion))
	}
	return nil
}

// injected returns the error to answer the call with, if any: a one-shot injected kind
// first, then the configured random rates, which spare the version documents. A
// NoValidHost is not an error answer: it marks the call so that the created server
// fails. Callers hold s.mu.
func (s *Server) injected(rt route, c *call) *apiError {
	if kinds := s.inject[rt.op]; len(kinds) > 0 {
		s.inject[rt.op] = kinds[1:]
		return s.injectedError(kinds[0], c)
	}
	if rt.op == "Versions" {
		return nil
	}
	rates := s.rates
	if rates.RateLimit > 0 && s.rng.Float64() < rates.RateLimit {
		return s.injectedError(KindRateLimit, c)
	}
	if rates.Internal > 0 && s.rng.Float64() < rates.Internal {
		return s.injectedError(KindInternal, c)
	}
	if rt.op == "CreateServer" {
		if rates.Quota > 0 && s.rng.Float64() < rates.Quota {
			return s.injectedError(KindQuota, c)
		}
		if rates.NoValidHost > 0 && s.rng.Float64() < rates.NoValidHost {
			return s.injectedError(KindNoValidHost, c)
		}
	}
	return nil
}

func (s *Server) injectedError(kind string, c *call) *apiError {
	switch kind {
	case KindRateLimit:
		return &apiError{status: http.StatusTooManyRequests, kind: kind, message: "Rate limit exceeded, retry later.", retryAfter: 1}
	case KindOverLimit:
		return &apiError{status: http.StatusRequestEntityTooLarge, kind: kind, message: "This request was rate-limited.", retryAfter: 1}
	case KindUnavailable:
		return newError(http.StatusServiceUnavailable, kind, "The service is temporarily unavailable.")
	case KindUnauthorized:
		return unauthorized()
	case KindQuota:
		used := s.usage().cores
		limit := s.limits.MaxCores
		if limit < 0 {
			limit = used
		}
		return quotaExceeded("cores", 1, used, limit)
	case KindNoValidHost:
		c.noValidHost = true
		return nil
	}
	return newError(http.StatusInternalServerError, KindInternal,
		"Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.")
}

// writeError answers e in the error format of svc.
func (s *Server) writeError(w http.ResponseWriter, svc service, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.status == http.StatusUnauthorized {
		// keystonemiddleware answers every service's unauthenticated calls.
		w.Header().Set("WWW-Authenticate", "Keystone uri=\"/identity\"")
		writeJSON(w, e.status, keystoneError(e))
		return
	}
	switch svc {
	case svcIdentity:
		writeJSON(w, e.status, keystoneError(e))
	case svcImage:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(e.status)
		_, _ = fmt.Fprintf(w, "%d %s\n\n%s\n\n   ", e.status, http.StatusText(e.status), e.message)
	case svcNetwork:
		typ := e.kind
		switch e.status {
		case http.StatusInternalServerError:
			typ = "HTTPInternalServerError"
		case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
			typ = "OverQuota"
		}
		writeJSON(w, e.status, map[string]any{"NeutronError": map[string]any{"type": typ, "message": e.message, "detail": ""}})
	default:
		key := map[int]string{
			http.StatusBadRequest:            "badRequest",
			http.StatusForbidden:             "forbidden",
			http.StatusNotFound:              "itemNotFound",
			http.StatusConflict:              "conflictingRequest",
			http.StatusNotAcceptable:         "notAcceptable",
			http.StatusRequestEntityTooLarge: "overLimit",
			http.StatusTooManyRequests:       "overLimit",
			http.StatusServiceUnavailable:    "serviceUnavailable",
		}[e.status]
		if key == "" {
			key = "computeFault"
		}
		inner := map[string]any{"code": e.status, "message": e.message}
		if e.retryAfter > 0 {
			inner["retryAfter"] = strconv.Itoa(e.retryAfter)
		}
		writeJSON(w, e.status, map[string]any{key: inner})
	}
}

func keystoneError(e *apiError) map[string]any {
	return map[string]any{"error": map[string]any{"code": e.status, "title": http.StatusText(e.status), "message": e.message}}
}

// hashID returns a UUID-shaped id derived from s.
func hashID(s string) string {
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// newID returns a fresh UUID-shaped id. Callers hold s.mu.
func (s *Server) newID() string {
	s.seq++
	return fmt.Sprintf("0511a000-%04x-4%03x-8%03x-%012x", (s.seq>>40)&0xffff, (s.seq>>28)&0xfff, (s.seq>>16)&0xfff, s.seq)
}

// Time formats of the services.
const (
	novaTime    = "2006-01-02T15:04:05Z"
	cinderTime  = "2006-01-02T15:04:05.000000"
	neutronTime = "2006-01-02T15:04:05Z"
)

// versionDoc is one entry of a version discovery document.
func versionDoc(id, status, href string, extra map[string]any) map[string]any {
	d := map[string]any{
		"id": id, "status": status, "updated": "2024-01-01T00:00:00Z",
		"links": []map[string]string{{"rel": "self", "href": href}},
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// filterValue reports whether a list filter (absent or empty: no filter) accepts v.
func filterValue(c *call, name, v string) bool {
	want, ok := c.r.URL.Query()[name]
	if !ok || len(want) == 0 || want[0] == "" {
		return true
	}
	for _, w := range want {
		if w == v {
			return true
		}
	}
	return false
}

// filterBool reports whether a boolean list filter accepts v.
func filterBool(c *call, name string, v bool) bool {
	want := c.query(name)
	if want == "" {
		return true
	}
	b, err := strconv.ParseBool(strings.ToLower(want))
	return err == nil && b == v
}
