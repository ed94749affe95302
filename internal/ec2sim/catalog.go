package ec2sim

import (
	"regexp"
	"time"
)

// InstanceType describes an instance type the simulator offers.
type InstanceType struct {
	Name   string
	VCPUs  int
	Cores  int
	MemMiB int64
	// Arch is "x86_64" or "arm64".
	Arch string
}

// Image describes an AMI the simulator offers.
type Image struct {
	ID           string
	Name         string
	OwnerID      string
	Created      time.Time
	Arch         string
	RootDevice   string
	RootSnapshot string
	// RootSizeGiB is the size of the root snapshot; launched root volumes are at least
	// this large.
	RootSizeGiB int
	RootType    string
	Tags        map[string]string
}

// DefaultInstanceTypes is the instance type catalogue used when Options.InstanceTypes
// is empty. The figures are those of the real types.
var DefaultInstanceTypes = []InstanceType{
	{Name: "t3.micro", VCPUs: 2, Cores: 1, MemMiB: 1024, Arch: "x86_64"},
	{Name: "t3.small", VCPUs: 2, Cores: 1, MemMiB: 2048, Arch: "x86_64"},
	{Name: "t3.medium", VCPUs: 2, Cores: 1, MemMiB: 4096, Arch: "x86_64"},
	{Name: "t3.large", VCPUs: 2, Cores: 1, MemMiB: 8192, Arch: "x86_64"},
	{Name: "m5.large", VCPUs: 2, Cores: 1, MemMiB: 8192, Arch: "x86_64"},
	{Name: "m5.xlarge", VCPUs: 4, Cores: 2, MemMiB: 16384, Arch: "x86_64"},
	{Name: "m5.2xlarge", VCPUs: 8, Cores: 4, MemMiB: 32768, Arch: "x86_64"},
	{Name: "m6i.large", VCPUs: 2, Cores: 1, MemMiB: 8192, Arch: "x86_64"},
	{Name: "m6g.large", VCPUs: 2, Cores: 2, MemMiB: 8192, Arch: "arm64"},
	{Name: "c5.large", VCPUs: 2, Cores: 1, MemMiB: 4096, Arch: "x86_64"},
	{Name: "c5.xlarge", VCPUs: 4, Cores: 2, MemMiB: 8192, Arch: "x86_64"},
	{Name: "r5.large", VCPUs: 2, Cores: 1, MemMiB: 16384, Arch: "x86_64"},
	{Name: "g4dn.xlarge", VCPUs: 4, Cores: 2, MemMiB: 16384, Arch: "x86_64"},
	{Name: "p3.2xlarge", VCPUs: 8, Cores: 4, MemMiB: 62464, Arch: "x86_64"},
	{Name: "x2idn.16xlarge", VCPUs: 64, Cores: 32, MemMiB: 1048576, Arch: "x86_64"},
	{Name: "mac1.metal", VCPUs: 12, Cores: 6, MemMiB: 32768, Arch: "x86_64_mac"},
}

// Canned AMI ids.
const (
	ImageUbuntuJammyOld = "ami-0a1b2c3d4e5f60001"
	ImageUbuntuJammy    = "ami-0a1b2c3d4e5f60002"
	ImageDebian12       = "ami-0a1b2c3d4e5f60003"
	ImageDebian12Arm    = "ami-0a1b2c3d4e5f60004"
)

// DefaultImages is the AMI catalogue used when Options.Images is empty: two Ubuntu
// 22.04 builds (so that "newest matching image" is observable) and Debian 12 for two
// architectures.
var DefaultImages = []Image{
	{
		ID: ImageUbuntuJammyOld, Name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240101",
		OwnerID: "099720109477", Created: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC), Arch: "x86_64",
		RootDevice: "/dev/sda1", RootSnapshot: "snap-0a1b2c3d4e5f60001", RootSizeGiB: 8, RootType: "gp2",
	},
	{
		ID: ImageUbuntuJammy, Name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240601",
		OwnerID: "099720109477", Created: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC), Arch: "x86_64",
		RootDevice: "/dev/sda1", RootSnapshot: "snap-0a1b2c3d4e5f60002", RootSizeGiB: 8, RootType: "gp2",
	},
	{
		ID: ImageDebian12, Name: "debian-12-amd64-20240502-1735",
		OwnerID: "136693071363", Created: time.Date(2024, 5, 2, 17, 35, 0, 0, time.UTC), Arch: "x86_64",
		RootDevice: "/dev/xvda", RootSnapshot: "snap-0a1b2c3d4e5f60003", RootSizeGiB: 8, RootType: "gp3",
	},
	{
		ID: ImageDebian12Arm, Name: "debian-12-arm64-20240502-1735",
		OwnerID: "136693071363", Created: time.Date(2024, 5, 2, 17, 35, 0, 0, time.UTC), Arch: "arm64",
		RootDevice: "/dev/xvda", RootSnapshot: "snap-0a1b2c3d4e5f60004", RootSizeGiB: 8, RootType: "gp3",
	},
}

// Standard EC2 vCPU quota codes.
const (
	QuotaStandardOnDemand = "L-1216C47A"
	QuotaStandardSpot     = "L-34B43A08"
)

// quotaFamilies maps an instance family prefix (the letters before the first digit) to
// its Service Quotas codes for on-demand and spot vCPUs, as published by AWS.
var quotaFamilies = map[string][2]string{
	"a": {QuotaStandardOnDemand, QuotaStandardSpot}, "c": {QuotaStandardOnDemand, QuotaStandardSpot},
	"d": {QuotaStandardOnDemand, QuotaStandardSpot}, "h": {QuotaStandardOnDemand, QuotaStandardSpot},
	"i": {QuotaStandardOnDemand, QuotaStandardSpot}, "m": {QuotaStandardOnDemand, QuotaStandardSpot},
	"r": {QuotaStandardOnDemand, QuotaStandardSpot}, "t": {QuotaStandardOnDemand, QuotaStandardSpot},
	"z":  {QuotaStandardOnDemand, QuotaStandardSpot},
	"dl": {"L-6E869C2A", "L-85EED4F7"}, "f": {"L-74FC7D96", "L-88CF9481"},
	"g": {"L-DB2E81BA", "L-3819A6DF"}, "vt": {"L-DB2E81BA", "L-3819A6DF"},
	"u-": {"L-43DA4232", ""}, "inf": {"L-1945791B", "L-B5D1601B"},
	"p": {"L-417A185B", "L-7212CCBC"}, "x": {"L-7295265B", "L-E3A00192"},
	"trn": {"L-2C3B7624", "L-6B0D517C"}, "hpc": {"L-F7808C92", ""},
}

var familyRE = regexp.MustCompile(`^([a-z\-]+)\d`)

// quotaCode returns the vCPU quota code of an instance type in a market, or "".
func quotaCode(instanceType string, spot bool) string {
	m := familyRE.FindStringSubmatch(instanceType)
	if m == nil {
		return ""
	}
	codes, ok := quotaFamilies[m[1]]
	if !ok {
		return ""
	}
	if spot {
		return codes[1]
	}
	return codes[0]
}
