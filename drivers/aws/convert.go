package aws

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// CloudName is the cloud reported on every instance.
const CloudName = "AWS"

// externalID is the node's external id: upstream Nodepool's JSON object form, with
// the instance and, for nodes on a dedicated host, the host.
type externalID struct {
	Instance string `json:"instance,omitempty"`
	Host     string `json:"host,omitempty"`
}

// formatExternalID returns the external id text of an instance, {"instance":"i-..."}.
func formatExternalID(instanceID string) string {
	return formatExternalIDs(instanceID, "")
}

// formatExternalIDs returns the external id text of an instance and its dedicated
// host, either of which may be empty: {"instance":"i-...","host":"h-..."}.
func formatExternalIDs(instanceID, hostID string) string {
	b, err := json.Marshal(externalID{Instance: instanceID, Host: hostID})
	if err != nil {
		// Marshalling a struct of strings cannot fail.
		return `{"instance":"` + instanceID + `"}`
	}
	return string(b)
}

// parseExternalID accepts the JSON object form and the plain instance id that older
// launchers stored. An empty id yields "".
func parseExternalID(s string) (string, error) {
	e, err := parseExternalIDs(s)
	if err != nil {
		return "", err
	}
	if e.Instance == "" && e.Host != "" {
		return "", drivers.Permanent("parsing external id %q: no instance id", s)
	}
	return e.Instance, nil
}

// parseExternalIDs parses an external id into its instance and host; an empty id
// yields neither.
func parseExternalIDs(s string) (externalID, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return externalID{}, nil
	}
	if !strings.HasPrefix(s, "{") {
		if strings.HasPrefix(s, `"`) {
			var id string
			if err := json.Unmarshal([]byte(s), &id); err != nil {
				return externalID{}, drivers.Permanent("parsing external id %q: %w", s, err)
			}
			return externalID{Instance: id}, nil
		}
		return externalID{Instance: s}, nil
	}
	var e externalID
	if err := json.Unmarshal([]byte(s), &e); err != nil {
		return externalID{}, drivers.Permanent("parsing external id %q: %w", s, err)
	}
	if e.Instance == "" && e.Host == "" {
		return externalID{}, drivers.Permanent("parsing external id %q: no instance or host id", s)
	}
	return e, nil
}

// lifecycle is the driver's view of an EC2 instance state.
type lifecycle int

const (
	lifeBooting     lifecycle = iota // pending
	lifeRunning                      // running
	lifeStopped                      // stopping, stopped: alive but not usable
	lifeTerminating                  // shutting-down
	lifeGone                         // terminated
)

// stateName returns the EC2 state of an instance, or "".
func stateName(in ec2types.Instance) string {
	if in.State == nil {
		return ""
	}
	return string(in.State.Name)
}

// lifecycleOf maps EC2 states to the few the driver acts on, in one place.
func lifecycleOf(log *slog.Logger, in ec2types.Instance) lifecycle {
	name := ec2types.InstanceStateName(stateName(in))
	switch name {
	case ec2types.InstanceStateNamePending:
		return lifeBooting
	case ec2types.InstanceStateNameRunning:
		return lifeRunning
	case ec2types.InstanceStateNameStopping, ec2types.InstanceStateNameStopped:
		return lifeStopped
	case ec2types.InstanceStateNameShuttingDown:
		return lifeTerminating
	case ec2types.InstanceStateNameTerminated:
		return lifeGone
	}
	log.Warn("unknown instance state, treating it as booting", "external_id", awssdk.ToString(in.InstanceId), "state", string(name))
	return lifeBooting
}

// addresses are an instance's IP addresses.
type addresses struct {
	publicV4, privateV4, publicV6 string
}

func addressesOf(in ec2types.Instance) addresses {
	a := addresses{publicV4: awssdk.ToString(in.PublicIpAddress), privateV4: awssdk.ToString(in.PrivateIpAddress)}
	if len(in.NetworkInterfaces) > 0 {
		nic := in.NetworkInterfaces[0]
		if len(nic.Ipv6Addresses) > 0 {
			a.publicV6 = awssdk.ToString(nic.Ipv6Addresses[0].Ipv6Address)
		}
		if a.publicV4 == "" && nic.Association != nil {
			a.publicV4 = awssdk.ToString(nic.Association.PublicIp)
		}
	}
	if a.publicV6 == "" {
		a.publicV6 = awssdk.ToString(in.Ipv6Address)
	}
	return a
}

// interfaceIP returns the address the launcher connects to: with use-internal-ip the
// private address, else the first of public IPv4, IPv6, private IPv4.
func (a addresses) interfaceIP(useInternal bool) string {
	if useInternal {
		return a.privateV4
	}
	for _, ip := range []string{a.publicV4, a.publicV6, a.privateV4} {
		if ip != "" {
			return ip
		}
	}
	return ""
}

// ready reports whether the addresses the pool asks for are assigned.
func (a addresses) ready(p *Pool) bool {
	if a.privateV4 == "" {
		return false
	}
	if p == nil || p.UseInternalIP {
		return true
	}
	if p.publicIPv4() && a.publicV4 == "" {
		return false
	}
	if p.publicIPv6() && a.publicV6 == "" {
		return false
	}
	return true
}

// driverData is copied to the node's driver_data: how the node was launched.
type driverData struct {
	InstanceType string `json:"instance_type"`
	Market       string `json:"market"`
	ImageID      string `json:"image_id,omitempty"`
}

// toInstance converts an EC2 instance to the driver-neutral view. pool and image are
// nil for instances not launched by this driver.
func (d *Driver) toInstance(in ec2types.Instance, pool *Pool, image *CloudImage, quota drivers.Resources) drivers.Instance {
	life := lifecycleOf(d.log, in)
	a := addressesOf(in)
	useInternal := pool != nil && pool.UseInternalIP
	market := "on-demand"
	if in.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot {
		market = "spot"
	}
	dd, err := json.Marshal(driverData{InstanceType: string(in.InstanceType), Market: market, ImageID: awssdk.ToString(in.ImageId)})
	if err != nil {
		dd = nil
	}
	out := drivers.Instance{
		ExternalID:  formatExternalIDs(awssdk.ToString(in.InstanceId), hostOf(in)),
		Ready:       life == lifeRunning,
		Deleted:     life == lifeGone,
		InterfaceIP: a.interfaceIP(useInternal),
		PublicIPv4:  a.publicV4,
		PrivateIPv4: a.privateV4,
		PublicIPv6:  a.publicV6,
		Cloud:       CloudName,
		Region:      d.region,
		Metadata:    tagMap(in.Tags),
		Quota:       quota,
		DriverData:  dd,
	}
	if in.Placement != nil {
		out.AZ = awssdk.ToString(in.Placement.AvailabilityZone)
		out.HostID = awssdk.ToString(in.Placement.HostId)
	}
	if image != nil {
		out.ImageName = image.Name
		out.Username = image.Username
		out.PythonPath = image.PythonPath
		out.ShellType = image.ShellType
		out.ConnectionType = image.ConnectionType
		out.ConnectionPort = image.ConnectionPort
	}
	return out
}

// stateReason describes why an instance stopped or terminated.
func stateReason(in ec2types.Instance) string {
	if in.StateReason != nil {
		return fmt.Sprintf("%s (%s)", awssdk.ToString(in.StateReason.Code), awssdk.ToString(in.StateReason.Message))
	}
	return awssdk.ToString(in.StateTransitionReason)
}

// hostOf returns the dedicated host an instance runs on, or "".
func hostOf(in ec2types.Instance) string {
	if in.Placement == nil {
		return ""
	}
	return awssdk.ToString(in.Placement.HostId)
}
