package drivers

import (
	"context"
	"encoding/json"
	"time"
)

// Metadata keys every driver stores on the instances it creates. They are Nodepool's
// names, so instances created by upstream launchers and by this one are recognised alike.
const (
	MetaProviderName = "nodepool_provider_name"
	MetaPoolName     = "nodepool_pool_name"
	MetaNodeID       = "nodepool_node_id"
)

// Launcher advances create and delete state machines one step per call.
type Launcher interface {
	// AdvanceCreate performs at most one short, non-blocking piece of work of a create
	// state machine (submit a cloud call, or check whether the instance is up) and
	// returns the new state. The state is complete when Complete is true, and then
	// Instance is set. Calling it again with the same input state must be safe.
	AdvanceCreate(ctx context.Context, st CreateState) (CreateState, error)
	// AdvanceDelete performs at most one step of a delete state machine. Deleting an
	// instance that no longer exists completes successfully.
	AdvanceDelete(ctx context.Context, st DeleteState) (DeleteState, error)
}

// Inventory lists what the driver's cloud account holds, for quota and leak cleanup.
type Inventory interface {
	// ListInstances returns every instance visible to the account, ours or not, with
	// the metadata it was created with.
	ListInstances(ctx context.Context) ([]Instance, error)
	// ListResources returns every resource (instances, volumes, ...) that carries
	// metadata, for leak detection.
	ListResources(ctx context.Context) ([]Resource, error)
	// DeleteResource deletes a leaked resource returned by ListResources. A resource
	// that is already gone counts as deleted.
	DeleteResource(ctx context.Context, r Resource) error
}

// QuotaReporter answers quota questions.
type QuotaReporter interface {
	// QuotaLimits returns the provider-wide limits the cloud reports. A key that is
	// absent is unlimited.
	QuotaLimits(ctx context.Context) (Resources, error)
	// LabelQuota returns what one node of the label in the pool consumes, in Nodepool's
	// resource names ("instances", "cores", "ram" in MiB, plus driver-specific keys).
	// A label the cloud cannot serve (an unknown instance type, say) yields a
	// *PermanentError.
	LabelQuota(ctx context.Context, pool, label string) (Resources, error)
}

// Driver is a whole cloud driver, one per configured provider.
type Driver interface {
	Launcher
	Inventory
	QuotaReporter
	// Close releases clients and background work.
	Close() error
}

// RequestInfo carries the node request's "safe attributes" that drivers may use, for
// example in dynamic tags.
type RequestInfo struct {
	ID               string          `json:"id"`
	Labels           []string        `json:"labels,omitempty"`
	Requestor        string          `json:"requestor,omitempty"`
	RequestorData    json.RawMessage `json:"requestor_data,omitempty"`
	RelativePriority int             `json:"relative_priority,omitempty"`
	EventID          string          `json:"event_id,omitempty"`
	CreatedTime      float64         `json:"created_time,omitempty"`
	TenantName       string          `json:"tenant_name,omitempty"`
}

// CreateRequest is the immutable input of a create state machine.
type CreateRequest struct {
	// NodeID is the Nodepool node id (10 digits) the instance is created for.
	NodeID string `json:"node_id"`
	// Attempt numbers launch attempts of the node from 1; together with NodeID it makes
	// an idempotency token that is stable across retries of one step but differs
	// between attempts.
	Attempt int `json:"attempt"`
	// Hostname is the instance name, "np<node id>".
	Hostname string `json:"hostname"`
	// Pool and Label name the provider pool and the label within it.
	Pool  string `json:"pool"`
	Label string `json:"label"`
	// ImageID is the external id of a ready image upload, or empty to let the driver
	// resolve the label's cloud image itself.
	ImageID string `json:"image_id,omitempty"`
	// Metadata must be stored on the instance and come back on ListInstances.
	Metadata map[string]string `json:"metadata"`
	// AZ is the chosen availability zone, or empty for the driver's choice.
	AZ string `json:"az,omitempty"`
	// Request describes the node request the node is launched for.
	Request RequestInfo `json:"request"`
}

// CreateState is the serializable state of a create state machine.
type CreateState struct {
	Request CreateRequest `json:"request"`
	// Step names the current state in Nodepool's wording; "" is the start.
	Step string `json:"step"`
	// ExternalID is the cloud's id of the instance, set as soon as it is known.
	ExternalID string `json:"external_id,omitempty"`
	// Complete is true once the instance is ready; Instance is then set.
	Complete bool      `json:"complete"`
	Instance *Instance `json:"instance,omitempty"`
	// Wait is the driver's hint for how long to wait before the next call; zero means
	// the next step can run at once.
	Wait time.Duration `json:"wait,omitempty"`
	// Data holds driver-private fields, opaque to the core.
	Data json.RawMessage `json:"data,omitempty"`
}

// DeleteState is the serializable state of a delete state machine.
type DeleteState struct {
	// ExternalID is the instance to delete, as the driver produced it (or as an older
	// launcher stored it on the node).
	ExternalID string `json:"external_id"`
	// NodeID is the node the instance belonged to, for logs and metadata checks.
	NodeID   string          `json:"node_id,omitempty"`
	Step     string          `json:"step"`
	Complete bool            `json:"complete"`
	Wait     time.Duration   `json:"wait,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// Instance is a driver-neutral view of a cloud instance.
type Instance struct {
	// ExternalID is opaque to the core. When it is the text of a JSON object (as the AWS
	// driver's {"instance": "i-..."}), the core stores it on the node as an object.
	ExternalID  string `json:"external_id"`
	Ready       bool   `json:"ready"`
	Deleted     bool   `json:"deleted,omitempty"`
	InterfaceIP string `json:"interface_ip,omitempty"`
	PublicIPv4  string `json:"public_ipv4,omitempty"`
	PrivateIPv4 string `json:"private_ipv4,omitempty"`
	PublicIPv6  string `json:"public_ipv6,omitempty"`
	PrivateIPv6 string `json:"private_ipv6,omitempty"`
	Cloud       string `json:"cloud,omitempty"`
	Region      string `json:"region,omitempty"`
	AZ          string `json:"az,omitempty"`
	HostID      string `json:"host_id,omitempty"`
	// Metadata is what the instance was created with (tags, properties).
	Metadata map[string]string `json:"metadata,omitempty"`
	// Quota is what the instance consumes.
	Quota Resources `json:"quota,omitempty"`
	// Connection details from the label's image configuration; empty means the
	// Nodepool default (ssh on port 22, python "auto").
	ImageName      string   `json:"image_name,omitempty"`
	Username       string   `json:"username,omitempty"`
	PythonPath     string   `json:"python_path,omitempty"`
	ShellType      string   `json:"shell_type,omitempty"`
	ConnectionType string   `json:"connection_type,omitempty"`
	ConnectionPort int      `json:"connection_port,omitempty"`
	HostKeys       []string `json:"host_keys,omitempty"`
	// DriverData is copied to the node's driver_data.
	DriverData json.RawMessage `json:"driver_data,omitempty"`
}

// Resource is a cloud object that carries metadata, for leak detection.
type Resource struct {
	// Type is an alphanumeric kind such as "instance" or "volume".
	Type string `json:"type"`
	// ID is the driver's id of the resource.
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata,omitempty"`
}
