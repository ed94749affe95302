package ec2sim

import (
	"encoding/xml"
	"maps"
	"slices"
)

// ec2Namespace is the XML namespace of EC2 API version 2016-11-15.
const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// timeFormat is the ISO 8601 form EC2 uses for timestamps.
const timeFormat = "2006-01-02T15:04:05.000Z"

type xmlErrorResponse struct {
	XMLName   xml.Name   `xml:"Response"`
	Errors    []xmlError `xml:"Errors>Error"`
	RequestID string     `xml:"RequestID"`
}

type xmlError struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type xmlPlacement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	Tenancy          string `xml:"tenancy"`
	Affinity         string `xml:"affinity,omitempty"`
	HostID           string `xml:"hostId,omitempty"`
}

type xmlStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xmlInstanceEBS struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlInstanceBDM struct {
	DeviceName string         `xml:"deviceName"`
	EBS        xmlInstanceEBS `xml:"ebs"`
}

type xmlAssociation struct {
	PublicIP string `xml:"publicIp"`
	IPOwner  string `xml:"ipOwnerId"`
}

type xmlIPv6 struct {
	Address string `xml:"ipv6Address"`
}

type xmlNICAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlNIC struct {
	NetworkInterfaceID string           `xml:"networkInterfaceId"`
	SubnetID           string           `xml:"subnetId,omitempty"`
	VpcID              string           `xml:"vpcId,omitempty"`
	Status             string           `xml:"status"`
	PrivateIPAddress   string           `xml:"privateIpAddress,omitempty"`
	Association        *xmlAssociation  `xml:"association,omitempty"`
	Attachment         xmlNICAttachment `xml:"attachment"`
	Groups             []xmlGroup       `xml:"groupSet>item"`
	IPv6Addresses      []xmlIPv6        `xml:"ipv6AddressesSet>item"`
}

type xmlIAMProfile struct {
	Arn string `xml:"arn"`
	ID  string `xml:"id"`
}

type xmlMetadataOptions struct {
	State        string `xml:"state"`
	HTTPTokens   string `xml:"httpTokens"`
	HTTPEndpoint string `xml:"httpEndpoint"`
}

type xmlInstance struct {
	InstanceID        string              `xml:"instanceId"`
	ImageID           string              `xml:"imageId"`
	State             xmlState            `xml:"instanceState"`
	PrivateDNSName    string              `xml:"privateDnsName"`
	DNSName           string              `xml:"dnsName"`
	Reason            string              `xml:"reason"`
	KeyName           string              `xml:"keyName,omitempty"`
	AmiLaunchIndex    int                 `xml:"amiLaunchIndex"`
	InstanceType      string              `xml:"instanceType"`
	LaunchTime        string              `xml:"launchTime"`
	Placement         xmlPlacement        `xml:"placement"`
	SubnetID          string              `xml:"subnetId,omitempty"`
	VpcID             string              `xml:"vpcId,omitempty"`
	PrivateIPAddress  string              `xml:"privateIpAddress,omitempty"`
	IPAddress         string              `xml:"ipAddress,omitempty"`
	IPv6Address       string              `xml:"ipv6Address,omitempty"`
	Groups            []xmlGroup          `xml:"groupSet>item"`
	StateReason       *xmlStateReason     `xml:"stateReason,omitempty"`
	Architecture      string              `xml:"architecture"`
	RootDeviceType    string              `xml:"rootDeviceType"`
	RootDeviceName    string              `xml:"rootDeviceName"`
	BlockDevices      []xmlInstanceBDM    `xml:"blockDeviceMapping>item"`
	InstanceLifecycle string              `xml:"instanceLifecycle,omitempty"`
	VirtualizationTyp string              `xml:"virtualizationType"`
	ClientToken       string              `xml:"clientToken,omitempty"`
	Tags              []xmlTag            `xml:"tagSet>item"`
	Hypervisor        string              `xml:"hypervisor"`
	NetworkInterfaces []xmlNIC            `xml:"networkInterfaceSet>item"`
	IAMProfile        *xmlIAMProfile      `xml:"iamInstanceProfile,omitempty"`
	EBSOptimized      bool                `xml:"ebsOptimized"`
	MetadataOptions   *xmlMetadataOptions `xml:"metadataOptions,omitempty"`
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Groups        []xmlGroup    `xml:"groupSet>item"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

type xmlRunInstancesResponse struct {
	XMLName       xml.Name      `xml:"RunInstancesResponse"`
	Xmlns         string        `xml:"xmlns,attr"`
	RequestID     string        `xml:"requestId"`
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Groups        []xmlGroup    `xml:"groupSet>item"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

type xmlDescribeInstancesResponse struct {
	XMLName      xml.Name         `xml:"DescribeInstancesResponse"`
	Xmlns        string           `xml:"xmlns,attr"`
	RequestID    string           `xml:"requestId"`
	Reservations []xmlReservation `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type xmlStateChange struct {
	InstanceID    string   `xml:"instanceId"`
	CurrentState  xmlState `xml:"currentState"`
	PreviousState xmlState `xml:"previousState"`
}

type xmlTerminateInstancesResponse struct {
	XMLName   xml.Name         `xml:"TerminateInstancesResponse"`
	Xmlns     string           `xml:"xmlns,attr"`
	RequestID string           `xml:"requestId"`
	Instances []xmlStateChange `xml:"instancesSet>item"`
}

type xmlVCPUInfo struct {
	DefaultVCpus          int `xml:"defaultVCpus"`
	DefaultCores          int `xml:"defaultCores"`
	DefaultThreadsPerCore int `xml:"defaultThreadsPerCore"`
}

type xmlMemoryInfo struct {
	SizeInMiB int64 `xml:"sizeInMiB"`
}

type xmlProcessorInfo struct {
	SupportedArchitectures []string `xml:"supportedArchitectures>item"`
}

type xmlInstanceTypeInfo struct {
	InstanceType          string           `xml:"instanceType"`
	CurrentGeneration     bool             `xml:"currentGeneration"`
	SupportedUsageClasses []string         `xml:"supportedUsageClasses>item"`
	ProcessorInfo         xmlProcessorInfo `xml:"processorInfo"`
	VCPUInfo              xmlVCPUInfo      `xml:"vCpuInfo"`
	MemoryInfo            xmlMemoryInfo    `xml:"memoryInfo"`
}

type xmlDescribeInstanceTypesResponse struct {
	XMLName       xml.Name              `xml:"DescribeInstanceTypesResponse"`
	Xmlns         string                `xml:"xmlns,attr"`
	RequestID     string                `xml:"requestId"`
	InstanceTypes []xmlInstanceTypeInfo `xml:"instanceTypeSet>item"`
	NextToken     string                `xml:"nextToken,omitempty"`
}

type xmlImageEBS struct {
	SnapshotID          string `xml:"snapshotId,omitempty"`
	VolumeSize          int    `xml:"volumeSize"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	VolumeType          string `xml:"volumeType"`
	Encrypted           bool   `xml:"encrypted"`
}

type xmlImageBDM struct {
	DeviceName string       `xml:"deviceName"`
	EBS        *xmlImageEBS `xml:"ebs,omitempty"`
}

type xmlImage struct {
	ImageID            string        `xml:"imageId"`
	ImageLocation      string        `xml:"imageLocation"`
	ImageState         string        `xml:"imageState"`
	ImageOwnerID       string        `xml:"imageOwnerId"`
	CreationDate       string        `xml:"creationDate"`
	IsPublic           bool          `xml:"isPublic"`
	Architecture       string        `xml:"architecture"`
	ImageType          string        `xml:"imageType"`
	Name               string        `xml:"name"`
	Description        string        `xml:"description,omitempty"`
	RootDeviceType     string        `xml:"rootDeviceType"`
	RootDeviceName     string        `xml:"rootDeviceName"`
	BlockDevices       []xmlImageBDM `xml:"blockDeviceMapping>item"`
	VirtualizationType string        `xml:"virtualizationType"`
	Hypervisor         string        `xml:"hypervisor"`
	EnaSupport         bool          `xml:"enaSupport"`
	Tags               []xmlTag      `xml:"tagSet>item"`
}

type xmlDescribeImagesResponse struct {
	XMLName   xml.Name   `xml:"DescribeImagesResponse"`
	Xmlns     string     `xml:"xmlns,attr"`
	RequestID string     `xml:"requestId"`
	Images    []xmlImage `xml:"imagesSet>item"`
	NextToken string     `xml:"nextToken,omitempty"`
}

type xmlVolumeAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlVolume struct {
	VolumeID         string                `xml:"volumeId"`
	Size             int                   `xml:"size"`
	SnapshotID       string                `xml:"snapshotId"`
	AvailabilityZone string                `xml:"availabilityZone"`
	Status           string                `xml:"status"`
	CreateTime       string                `xml:"createTime"`
	Attachments      []xmlVolumeAttachment `xml:"attachmentSet>item"`
	Tags             []xmlTag              `xml:"tagSet>item"`
	VolumeType       string                `xml:"volumeType"`
	IOPS             int                   `xml:"iops,omitempty"`
	Throughput       int                   `xml:"throughput,omitempty"`
	Encrypted        bool                  `xml:"encrypted"`
}

type xmlDescribeVolumesResponse struct {
	XMLName   xml.Name    `xml:"DescribeVolumesResponse"`
	Xmlns     string      `xml:"xmlns,attr"`
	RequestID string      `xml:"requestId"`
	Volumes   []xmlVolume `xml:"volumeSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

type xmlCreateVolumeResponse struct {
	XMLName   xml.Name `xml:"CreateVolumeResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	RequestID string   `xml:"requestId"`
	xmlVolume
}

type xmlReturnResponse struct {
	XMLName   xml.Name
	Xmlns     string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
	Return    bool   `xml:"return"`
}

type xmlAvailabilityZone struct {
	ZoneName           string `xml:"zoneName"`
	ZoneState          string `xml:"zoneState"`
	RegionName         string `xml:"regionName"`
	ZoneID             string `xml:"zoneId"`
	ZoneType           string `xml:"zoneType"`
	OptInStatus        string `xml:"optInStatus"`
	GroupName          string `xml:"groupName"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
}

type xmlDescribeAvailabilityZonesResponse struct {
	XMLName   xml.Name              `xml:"DescribeAvailabilityZonesResponse"`
	Xmlns     string                `xml:"xmlns,attr"`
	RequestID string                `xml:"requestId"`
	Zones     []xmlAvailabilityZone `xml:"availabilityZoneInfo>item"`
}

// xmlTags renders a tag map sorted by key.
func xmlTags(tags map[string]string) []xmlTag {
	keys := slices.Sorted(maps.Keys(tags))
	out := make([]xmlTag, 0, len(keys))
	for _, k := range keys {
		out = append(out, xmlTag{Key: k, Value: tags[k]})
	}
	return out
}
