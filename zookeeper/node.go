package zookeeper

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// defaultConnectionPort is Nodepool's connection_port when a record has none.
const defaultConnectionPort = 22

// defaultUsername is Nodepool's reader default for a node without "username".
const defaultUsername = "zuul"

// Labels is a node's label list ("type"). It decodes both the list form and
// the legacy bare string, and always encodes as a list.
type Labels []string

// UnmarshalJSON accepts a list of strings, a bare string, or null.
func (l *Labels) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		*l = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*l = Labels{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("want list of strings or string, got %s", kind(data))
	}
	*l = list
	return nil
}

// MarshalJSON writes a list (an empty one for nil).
func (l Labels) MarshalJSON() ([]byte, error) {
	return marshal(stringsOrEmpty([]string(l)))
}

// Node is a node record at /nodepool/nodes/<id>.
//
// Every Nodepool key is written on Encode, nulls included, as upstream does;
// non-pointer fields write null for their zero value (upstream's unset).
// Keys this type does not model, such as the "id" and "node_properties" keys
// Zuul adds when it writes a node back, are kept in Extra.
type Node struct {
	// ID is the znode name, the 10-digit sequence; not part of the JSON.
	ID string `json:"-"`
	// Version is the znode data version the record was read at; UpdateNode
	// writes only if the znode still has it. Not part of the JSON.
	Version int32 `json:"-"`

	// State is the node state ("state").
	State NodeState
	// StateTime is the unix time of the last state change ("state_time").
	StateTime float64
	// CreatedTime is the unix time of the first store ("created_time").
	CreatedTime float64
	// Type lists the node's labels ("type").
	Type Labels
	// Provider is the provider name ("provider").
	Provider string
	// Pool is the pool name ("pool").
	Pool string
	// Launcher is the id of the pool worker that created the node
	// ("launcher").
	Launcher string
	// AllocatedTo is the request id the node is earmarked for
	// ("allocated_to").
	AllocatedTo *string
	// Cloud is the cloud name ("cloud").
	Cloud *string
	// Region is the cloud region ("region").
	Region *string
	// AZ is the availability zone ("az").
	AZ *string
	// PublicIPv4 is the public IPv4 address ("public_ipv4").
	PublicIPv4 *string
	// PrivateIPv4 is the private IPv4 address ("private_ipv4").
	PrivateIPv4 *string
	// PublicIPv6 is the public IPv6 address ("public_ipv6").
	PublicIPv6 *string
	// InterfaceIP is the address Zuul connects to ("interface_ip").
	InterfaceIP string
	// HostID is the hypervisor id, if the cloud exposes one ("host_id").
	HostID *string
	// ConnectionType is ssh, winrm, network_cli, kubectl, ... ("connection_type").
	ConnectionType *string
	// ConnectionPort is the port as JSON: an integer, or an object with
	// credentials for Kubernetes connection types ("connection_port").
	// Decoding falls back to "ssh_port" and then 22.
	ConnectionPort json.RawMessage
	// SSHPort is the legacy duplicate of an integer connection port
	// ("ssh_port"). Encode writes ConnectionPort here when that is an
	// integer.
	SSHPort int
	// Username is the login user ("username"; reader default "zuul" when the
	// key is absent).
	Username *string
	// PythonPath is the Python interpreter path, usually "auto"
	// ("python_path").
	PythonPath *string
	// ShellType is sh, csh, cmd, powershell, ... ("shell_type").
	ShellType *string
	// HostKeys lists "<keytype> <base64>" entries; written as a list, never
	// null ("host_keys").
	HostKeys []string
	// ImageID is the image upload path or cloud image name ("image_id").
	ImageID string
	// ExternalID is the cloud's id as JSON: a string, or an object such as
	// {"instance": "i-…"} for AWS ("external_id").
	ExternalID json.RawMessage
	// Hostname is set by the static driver ("hostname").
	Hostname *string
	// Comment is the hold reason or an operator note ("comment").
	Comment *string
	// HoldJob is Zuul's autohold key ("hold_job").
	HoldJob *string
	// HoldExpiration is the hold duration in seconds; 0 means no expiry.
	// Strings are parsed and junk becomes 0, as Nodepool coerces it
	// ("hold_expiration").
	HoldExpiration int
	// UserData is requestor data, e.g. Zuul's {"zuul_system", "project_name"}
	// while in use ("user_data").
	UserData json.RawMessage
	// Resources is the quota the node consumes, e.g. cores, instances, ram
	// ("resources"). Integral values are written as integers. Decoding makes
	// every amount usable (see ResourceCounts) and notes changes in Corrected.
	Resources map[string]float64
	// Slot is the static or metastatic slot number ("slot").
	Slot *int
	// Attributes are the pool's node-attributes, e.g. "executor-zone"
	// ("attributes"). Numbers decode as json.Number.
	Attributes map[string]any
	// TenantName is copied from the request ("tenant_name").
	TenantName *string
	// Requestor is copied from the request ("requestor").
	Requestor *string
	// DriverData is driver-private JSON ("driver_data").
	DriverData json.RawMessage

	// Extra holds every key this type does not model, written back unchanged.
	Extra map[string]json.RawMessage

	// Corrected describes each stored value decoding could not use as it was
	// and replaced (a negative or absurd resource amount), e.g.
	// "resources.cores: 1e19 is above 1099511627776, read as 1099511627776".
	// Not part of the JSON; readers with a logger report it.
	Corrected []string `json:"-"`
}

// DecodeNode decodes the JSON of node id. It returns a *DecodeError for data
// that is not a JSON object (ErrEmptyRecord for an empty znode) or has a
// modelled field of the wrong type.
func DecodeNode(id string, data []byte) (*Node, error) {
	n, err := decodeNode(data)
	if err != nil {
		return nil, &DecodeError{Path: NodePath(id), Err: err}
	}
	n.ID = id
	return n, nil
}

func decodeNode(data []byte) (*Node, error) {
	o, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	n := &Node{}
	var state string
	if state, err = o.str("state"); err != nil {
		return nil, err
	}
	n.State = NodeState(state)
	if n.StateTime, err = o.float("state_time"); err != nil {
		return nil, err
	}
	if n.CreatedTime, err = o.float("created_time"); err != nil {
		return nil, err
	}
	if raw := o.take("type"); raw != nil {
		if err := n.Type.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("field %q: %w", "type", err)
		}
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"provider", &n.Provider},
		{"pool", &n.Pool},
		{"launcher", &n.Launcher},
		{"interface_ip", &n.InterfaceIP},
		{"image_id", &n.ImageID},
	} {
		if *f.dst, err = o.str(f.key); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		key string
		dst **string
	}{
		{"allocated_to", &n.AllocatedTo},
		{"cloud", &n.Cloud},
		{"region", &n.Region},
		{"az", &n.AZ},
		{"public_ipv4", &n.PublicIPv4},
		{"private_ipv4", &n.PrivateIPv4},
		{"public_ipv6", &n.PublicIPv6},
		{"host_id", &n.HostID},
		{"connection_type", &n.ConnectionType},
		{"python_path", &n.PythonPath},
		{"shell_type", &n.ShellType},
		{"hostname", &n.Hostname},
		{"comment", &n.Comment},
		{"hold_job", &n.HoldJob},
		{"tenant_name", &n.TenantName},
		{"requestor", &n.Requestor},
	} {
		if *f.dst, err = o.strPtr(f.key); err != nil {
			return nil, err
		}
	}

	// Username: absent means Nodepool's default, an explicit null stays null.
	if o.has("username") {
		if n.Username, err = o.strPtr("username"); err != nil {
			return nil, err
		}
	} else {
		u := defaultUsername
		n.Username = &u
	}

	// connection_port falls back to ssh_port, then 22; ssh_port itself is
	// kept as an int.
	sshRaw := o.take("ssh_port")
	n.ConnectionPort = o.raw("connection_port")
	if n.ConnectionPort == nil && sshRaw != nil {
		n.ConnectionPort = append(json.RawMessage(nil), sshRaw...)
	}
	if n.ConnectionPort == nil {
		n.ConnectionPort = json.RawMessage(fmt.Sprint(defaultConnectionPort))
	}
	if p, ok := integer(n.ConnectionPort); ok {
		n.SSHPort = p
	} else if p, ok := integer(sshRaw); ok {
		n.SSHPort = p
	} else {
		n.SSHPort = defaultConnectionPort
	}

	if n.HostKeys, err = o.strings("host_keys"); err != nil {
		return nil, err
	}
	n.ExternalID = o.raw("external_id")
	n.HoldExpiration = coerceInt(o.take("hold_expiration"))
	n.UserData = o.raw("user_data")
	if n.Resources, n.Corrected, err = o.resources("resources"); err != nil {
		return nil, err
	}
	if n.Slot, err = o.intPtr("slot"); err != nil {
		return nil, err
	}
	if n.Attributes, err = o.anyMap("attributes"); err != nil {
		return nil, err
	}
	n.DriverData = o.raw("driver_data")
	n.Extra = o.rest()
	return n, nil
}

// Encode returns the node's JSON: every Nodepool node key (nulls included)
// plus the Extra keys. host_keys and type are always lists; ssh_port mirrors
// an integer connection_port.
func (n *Node) Encode() ([]byte, error) {
	w := newWriter(n.Extra)
	w.set("state", strOrNull(string(n.State)))
	w.set("state_time", floatOrNull(n.StateTime))
	w.set("created_time", floatOrNull(n.CreatedTime))
	w.set("type", n.Type)
	w.set("provider", strOrNull(n.Provider))
	w.set("pool", strOrNull(n.Pool))
	w.set("launcher", strOrNull(n.Launcher))
	w.set("allocated_to", n.AllocatedTo)
	w.set("cloud", n.Cloud)
	w.set("region", n.Region)
	w.set("az", n.AZ)
	w.set("public_ipv4", n.PublicIPv4)
	w.set("private_ipv4", n.PrivateIPv4)
	w.set("public_ipv6", n.PublicIPv6)
	w.set("interface_ip", strOrNull(n.InterfaceIP))
	w.set("host_id", n.HostID)
	w.set("connection_type", n.ConnectionType)

	port := n.ConnectionPort
	if isNull(port) {
		p := n.SSHPort
		if p == 0 {
			p = defaultConnectionPort
		}
		port = json.RawMessage(fmt.Sprint(p))
	}
	w.setRaw("connection_port", port)
	if p, ok := integer(port); ok {
		w.set("ssh_port", p)
	} else {
		w.set("ssh_port", intOrNull(n.SSHPort))
	}

	w.set("username", n.Username)
	w.set("python_path", n.PythonPath)
	w.set("shell_type", n.ShellType)
	w.set("host_keys", stringsOrEmpty(n.HostKeys))
	w.set("image_id", strOrNull(n.ImageID))
	w.setRaw("external_id", n.ExternalID)
	w.set("hostname", n.Hostname)
	w.set("comment", n.Comment)
	w.set("hold_job", n.HoldJob)
	w.set("hold_expiration", intOrNull(n.HoldExpiration))
	w.setRaw("user_data", n.UserData)
	if n.Resources == nil {
		w.set("resources", nil)
	} else {
		w.set("resources", n.Resources)
	}
	w.set("slot", n.Slot)
	if n.Attributes == nil {
		w.set("attributes", nil)
	} else {
		w.set("attributes", n.Attributes)
	}
	w.set("tenant_name", n.TenantName)
	w.set("requestor", n.Requestor)
	w.setRaw("driver_data", n.DriverData)
	return w.bytes()
}

// ExternalIDString returns the external id as text: the string itself for a
// string id, the "instance" member of an object id (AWS writes
// {"instance": "i-…"}), and the compact JSON text otherwise ("" when unset).
func (n *Node) ExternalIDString() string {
	if isNull(n.ExternalID) {
		return ""
	}
	var s string
	if err := json.Unmarshal(n.ExternalID, &s); err == nil {
		return s
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(n.ExternalID, &obj); err == nil {
		if err := json.Unmarshal(obj["instance"], &s); err == nil && s != "" {
			return s
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, n.ExternalID); err != nil {
		return string(n.ExternalID)
	}
	return buf.String()
}

// SetExternalID stores a string external id.
func (n *Node) SetExternalID(id string) {
	n.ExternalID, _ = marshal(id)
}

// Port returns the connection port when it is an integer.
func (n *Node) Port() (int, bool) {
	if isNull(n.ConnectionPort) {
		return 0, false
	}
	return integer(n.ConnectionPort)
}

// SetPort sets an integer connection port (and the legacy ssh_port).
func (n *Node) SetPort(port int) {
	n.ConnectionPort = json.RawMessage(fmt.Sprint(port))
	n.SSHPort = port
}
