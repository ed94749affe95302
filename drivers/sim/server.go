package sim

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
)

// Paths of the simcloud HTTP API. The /v1 paths are the cloud API: they are counted and
// subject to injected errors. The others are for operators, tests and benchmarks.
const (
	pathInstances = "/v1/instances"
	pathLimits    = "/v1/limits"
	// PathStats answers GET with the cloud's counters as a JSON object (see
	// [Cloud.Stats]).
	PathStats = "/stats"
	// PathInstances answers GET with every instance, metadata included, as a JSON array
	// of [InstanceInfo].
	PathInstances = "/instances"
	// PathInject takes POST of a JSON [Injection] and makes the next call of that kind
	// fail with the code.
	PathInject = "/inject"
	// PathFaults answers GET with the cloud's [Faults] and takes PUT of new ones.
	PathFaults = "/faults"
	// PathCreations answers GET with the number of instances ever created per node id
	// as a JSON object (see [Cloud.CreationsByNode]).
	PathCreations = "/creations"
	// PathPeakLive answers GET with the most instances each node id had at once that
	// were not being deleted.
	PathPeakLive = "/creations/peak-live"
)

// Injection is the body of a POST to [PathInject].
type Injection struct {
	Call string    `json:"call"`
	Code ErrorCode `json:"code"`
}

// NewHandler serves cloud over HTTP with JSON bodies; [Client] is its client. Errors are
// answered with the HTTP status of their code and a JSON [APIError] body. A nil logger
// discards.
func NewHandler(cloud *Cloud, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{cloud: cloud, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathInstances, h.create)
	mux.HandleFunc("GET "+pathInstances, h.list)
	mux.HandleFunc("GET "+pathInstances+"/{id}", h.describe)
	mux.HandleFunc("DELETE "+pathInstances+"/{id}", h.delete)
	mux.HandleFunc("GET "+pathLimits, h.limits)
	mux.HandleFunc("GET "+PathStats, h.stats)
	mux.HandleFunc("GET "+PathInstances, h.instances)
	mux.HandleFunc("POST "+PathInject, h.inject)
	mux.HandleFunc("GET "+PathFaults, h.faults)
	mux.HandleFunc("PUT "+PathFaults, h.setFaults)
	mux.HandleFunc("GET "+PathCreations, h.creations)
	mux.HandleFunc("GET "+PathPeakLive, func(w http.ResponseWriter, r *http.Request) {
		h.reply(w, r, h.cloud.PeakLiveByNode(), nil)
	})
	return mux
}

type handler struct {
	cloud  *Cloud
	logger *slog.Logger
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	var in CreateInstanceInput
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		h.fail(w, r, apiErrorf(CodeInvalidParameter, "decoding create request: %v", err))
		return
	}
	out, err := h.cloud.CreateInstance(r.Context(), in)
	h.reply(w, r, out, err)
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	out, err := h.cloud.ListInstances(r.Context())
	h.reply(w, r, out, err)
}

func (h *handler) describe(w http.ResponseWriter, r *http.Request) {
	out, err := h.cloud.DescribeInstance(r.Context(), r.PathValue("id"))
	h.reply(w, r, out, err)
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	out, err := h.cloud.DeleteInstance(r.Context(), DeleteInstanceInput{
		ID:     r.PathValue("id"),
		NodeID: r.URL.Query().Get("node_id"),
	})
	h.reply(w, r, out, err)
}

func (h *handler) limits(w http.ResponseWriter, r *http.Request) {
	out, err := h.cloud.Limits(r.Context())
	h.reply(w, r, out, err)
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	h.reply(w, r, h.cloud.Stats(), nil)
}

func (h *handler) instances(w http.ResponseWriter, r *http.Request) {
	h.reply(w, r, h.cloud.Instances(), nil)
}

func (h *handler) inject(w http.ResponseWriter, r *http.Request) {
	var in Injection
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		h.fail(w, r, apiErrorf(CodeInvalidParameter, "decoding injection: %v", err))
		return
	}
	if err := h.cloud.InjectError(in.Call, in.Code); err != nil {
		h.fail(w, r, apiErrorf(CodeInvalidParameter, "%v", err))
		return
	}
	h.reply(w, r, in, nil)
}

func (h *handler) faults(w http.ResponseWriter, r *http.Request) {
	h.reply(w, r, h.cloud.Faults(), nil)
}

func (h *handler) setFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		h.fail(w, r, apiErrorf(CodeInvalidParameter, "decoding faults: %v", err))
		return
	}
	if err := h.cloud.SetFaults(f); err != nil {
		h.fail(w, r, apiErrorf(CodeInvalidParameter, "%v", err))
		return
	}
	h.reply(w, r, h.cloud.Faults(), nil)
}

func (h *handler) creations(w http.ResponseWriter, r *http.Request) {
	h.reply(w, r, h.cloud.CreationsByNode(), nil)
}

// reply writes v as JSON, or the error.
func (h *handler) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		var ae *APIError
		if !errors.As(err, &ae) {
			ae = apiErrorf(CodeInternalError, "%v", err)
		}
		h.fail(w, r, ae)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.logger.Debug("writing reply", "path", r.URL.Path, "error", err)
	}
}

// fail writes an error reply.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, ae *APIError) {
	h.logger.Debug("call failed", "method", r.Method, "path", r.URL.Path, "code", ae.Code, "error", ae.Message)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Code.HTTPStatus())
	if err := json.NewEncoder(w).Encode(ae); err != nil {
		h.logger.Debug("writing error reply", "path", r.URL.Path, "error", err)
	}
}
