package awssim

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Instance types: the simulator knows every type instanceTypeRE accepts
// (family.size), with its architectures, vCPUs and memory derived from the
// family and the size as EC2 sizes them. DescribeInstanceTypes lists them,
// and RunInstances refuses an image of another architecture than its type,
// with EC2's error.

// typeFamilies are the families the simulator knows.
var typeFamilies = []string{"t2", "t3", "t3a", "t4g", "m5", "m5a", "m6i", "m6g", "m6a", "m7i", "m7g", "m7a", "c5", "c5a", "c6i", "c6g", "c6a",
	"c7i", "c7g", "c7a", "r5", "r5a", "r6i", "r6g", "r7i", "r7g", "x2idn", "i4i", "g5", "p4d", "m1", "a1"}

// instanceTypeRE is the shape of the types the simulator accepts:
// family.size.
var instanceTypeRE = regexp.MustCompile(`^(` + strings.Join(typeFamilies, "|") + `)\.(nano|micro|small|medium|large|xlarge|[0-9]+xlarge|metal)$`)

// typeInfo is what the simulator knows of one instance type.
type typeInfo struct {
	name      string
	archs     []string // supported architectures, as DescribeInstanceTypes lists them
	vcpus     int
	memoryMiB int
	burstable bool
}

// armFamilies run arm64 (Graviton): the families whose processor letter is
// g, and a1.
var armFamilies = map[string]bool{"t4g": true, "m6g": true, "m7g": true, "c6g": true, "c7g": true, "r6g": true, "r7g": true, "a1": true}

// i386Families also run 32-bit images.
var i386Families = map[string]bool{"t2": true, "m1": true}

// memPerVCPU is the family class's GiB per vCPU: m (general) 4, c
// (compute) 2, r and x (memory) 8 and 16; the rest are general purpose.
func memPerVCPU(family string) float64 {
	switch family[0] {
	case 'c':
		return 2
	case 'r':
		return 8
	case 'x':
		return 16
	}
	return 4
}

// tSizes are the burstable families' sizes: vCPUs and GiB.
var tSizes = map[string]struct {
	vcpus int
	gib   float64
}{
	"nano": {2, 0.5}, "micro": {2, 1}, "small": {2, 2}, "medium": {2, 4}, "large": {2, 8}, "xlarge": {4, 16}, "2xlarge": {8, 32},
}

// lookupType returns what the simulator knows of name; false for a type
// it does not know.
func lookupType(name string) (typeInfo, bool) {
	if !instanceTypeRE.MatchString(name) {
		return typeInfo{}, false
	}
	family, size, _ := strings.Cut(name, ".")
	ti := typeInfo{name: name, archs: []string{"x86_64"}}
	switch {
	case armFamilies[family]:
		ti.archs = []string{"arm64"}
	case i386Families[family]:
		ti.archs = []string{"i386", "x86_64"}
	}
	if strings.HasPrefix(family, "t") {
		s, ok := tSizes[size]
		if !ok {
			return typeInfo{}, false
		}
		ti.vcpus, ti.memoryMiB, ti.burstable = s.vcpus, int(s.gib*1024), true
		return ti, true
	}
	switch size {
	case "nano", "micro":
		return typeInfo{}, false // only the burstable families come this small
	case "small":
		ti.vcpus = 1
	case "medium":
		ti.vcpus = 1
		if family != "m1" {
			ti.vcpus = 2
		}
	case "large":
		ti.vcpus = 2
	case "xlarge":
		ti.vcpus = 4
	case "metal":
		ti.vcpus = 96
	default:
		n, err := strconv.Atoi(strings.TrimSuffix(size, "xlarge"))
		if err != nil || n < 2 || n > 48 {
			return typeInfo{}, false
		}
		ti.vcpus = 4 * n
	}
	ti.memoryMiB = int(float64(ti.vcpus) * memPerVCPU(family) * 1024)
	if family == "m1" { // the first generation: 1.7 GiB a small
		ti.memoryMiB = ti.vcpus * 1740
	}
	return ti, true
}

// listedSizes are the sizes DescribeInstanceTypes lists of every family
// (RunInstances accepts any size lookupType knows).
var listedSizes = []string{"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"}

// allTypes is every listed type, sorted by name.
var allTypes = func() []typeInfo {
	var out []typeInfo
	for _, f := range typeFamilies {
		for _, sz := range listedSizes {
			if ti, ok := lookupType(f + "." + sz); ok {
				out = append(out, ti)
			}
		}
	}
	slices.SortFunc(out, func(a, b typeInfo) int { return strings.Compare(a.name, b.name) })
	return out
}()

// archMismatch is EC2's answer to a launch whose image's architecture the
// type does not run: nil when it does.
func archMismatch(ti typeInfo, imageArch string) *APIError {
	if slices.Contains(ti.archs, imageArch) {
		return nil
	}
	// EC2 names the type's architectures newest first: "x86_64,i386".
	archs := slices.Clone(ti.archs)
	slices.Reverse(archs)
	return apiErr("InvalidParameterValue", "The architecture '%s' of the specified instance type does not match the architecture '%s' of the specified AMI. "+
		"Specify an instance type and an AMI that have matching architectures, and try again. "+
		"You can use 'describe-instance-types' or 'describe-images' to discover the architecture of the instance type or AMI.",
		strings.Join(archs, ","), imageArch)
}

// templateArchLocked checks a launch-template version's image against its
// type, as Auto Scaling does when a group is pointed at it: nil when
// either is unset or unknown (the launch reports those).
func (s *Sim) templateArchLocked(v *ltVersion) error {
	img, typ := deref(v.data.ImageID), deref(v.data.InstanceType)
	im, ok := s.launchImageLocked(img, s.nowLocked())
	if img == "" || typ == "" || !ok {
		return nil
	}
	ti, ok := lookupType(typ)
	if !ok {
		return nil
	}
	if err := archMismatch(ti, im.arch); err != nil {
		return err
	}
	return nil
}

type xProcessorInfo struct {
	Architectures []string `xml:"supportedArchitectures>item"`
	Manufacturer  string   `xml:"manufacturer"`
}

type xVCpuInfo struct {
	DefaultVCpus          int `xml:"defaultVCpus"`
	DefaultCores          int `xml:"defaultCores"`
	DefaultThreadsPerCore int `xml:"defaultThreadsPerCore"`
}

type xMemoryInfo struct {
	SizeInMiB int `xml:"sizeInMiB"`
}

type xInstanceType struct {
	InstanceType      string         `xml:"instanceType"`
	CurrentGeneration bool           `xml:"currentGeneration"`
	Burstable         bool           `xml:"burstablePerformanceSupported"`
	FreeTier          bool           `xml:"freeTierEligible"`
	UsageClasses      []string       `xml:"supportedUsageClasses>item"`
	RootDeviceTypes   []string       `xml:"supportedRootDeviceTypes>item"`
	Virtualization    []string       `xml:"supportedVirtualizationTypes>item"`
	BareMetal         bool           `xml:"bareMetal"`
	Hypervisor        string         `xml:"hypervisor,omitempty"`
	Processor         xProcessorInfo `xml:"processorInfo"`
	VCpu              xVCpuInfo      `xml:"vCpuInfo"`
	Memory            xMemoryInfo    `xml:"memoryInfo"`
}

func (ti typeInfo) xml() xInstanceType {
	family, size, _ := strings.Cut(ti.name, ".")
	x := xInstanceType{
		InstanceType: ti.name, CurrentGeneration: family != "m1" && family != "t2", Burstable: ti.burstable,
		FreeTier:     ti.name == "t2.micro" || ti.name == "t3.micro",
		UsageClasses: []string{"on-demand", "spot"}, RootDeviceTypes: []string{"ebs"}, Virtualization: []string{"hvm"},
		BareMetal: size == "metal", Hypervisor: "nitro",
		Processor: xProcessorInfo{Architectures: ti.archs, Manufacturer: "Intel"},
		VCpu:      xVCpuInfo{DefaultVCpus: ti.vcpus, DefaultCores: max(ti.vcpus/2, 1), DefaultThreadsPerCore: min(ti.vcpus, 2)},
		Memory:    xMemoryInfo{SizeInMiB: ti.memoryMiB},
	}
	switch {
	case x.BareMetal:
		x.Hypervisor = ""
	case family == "m1" || family == "t2":
		x.Hypervisor = "xen"
	}
	switch {
	case ti.archs[0] == "arm64":
		x.Processor.Manufacturer = "AWS"
		x.VCpu.DefaultCores, x.VCpu.DefaultThreadsPerCore = ti.vcpus, 1
	case strings.ContainsAny(family[1:], "a"):
		x.Processor.Manufacturer = "AMD"
	}
	return x
}

// typeFilters are DescribeInstanceTypes' filters the simulator serves.
var typeFilters = map[string]func(ti typeInfo) []string{
	"instance-type":                               func(ti typeInfo) []string { return []string{ti.name} },
	"processor-info.supported-architecture":       func(ti typeInfo) []string { return ti.archs },
	"vcpu-info.default-vcpus":                     func(ti typeInfo) []string { return []string{strconv.Itoa(ti.vcpus)} },
	"memory-info.size-in-mib":                     func(ti typeInfo) []string { return []string{strconv.Itoa(ti.memoryMiB)} },
	"burstable-performance-supported":             func(ti typeInfo) []string { return []string{strconv.FormatBool(ti.burstable)} },
	"current-generation":                          func(ti typeInfo) []string { return []string{strconv.FormatBool(ti.xml().CurrentGeneration)} },
	"processor-info.manufacturer":                 func(ti typeInfo) []string { return []string{ti.xml().Processor.Manufacturer} },
	"supported-virtualization-type":               func(typeInfo) []string { return []string{"hvm"} },
	"supported-usage-class":                       func(typeInfo) []string { return []string{"on-demand", "spot"} },
	"instance-storage-supported":                  func(typeInfo) []string { return []string{"false"} },
	"processor-info.sustained-clock-speed-in-ghz": func(typeInfo) []string { return []string{"3.1"} },
}

type describeInstanceTypesResponse struct {
	ec2Meta
	Types     []xInstanceType `xml:"instanceTypeSet>item"`
	NextToken string          `xml:"nextToken,omitempty"`
}

// describeInstanceTypes lists the known types (InstanceType.N, the
// filters of typeFilters; MaxResults 5-100 and NextToken). An unknown type
// asked for by name is InvalidInstanceType, naming every one.
func (s *Sim) describeInstanceTypes(r *request) (any, error) {
	names := r.list("InstanceType")
	fs, err := r.filters(filterNames(typeFilters, false))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("itype", 5, 100, "", false)
	if err != nil {
		return nil, err
	}
	if max == 0 {
		max = 100 // EC2 pages its answer even when not asked to
	}
	var list []typeInfo
	if len(names) > 0 {
		var missing []string
		for _, n := range names {
			ti, ok := lookupType(n)
			if !ok {
				missing = append(missing, n)
				continue
			}
			if !slices.ContainsFunc(list, func(t typeInfo) bool { return t.name == n }) {
				list = append(list, ti)
			}
		}
		if len(missing) > 0 {
			return nil, apiErr("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(missing, ", "))
		}
		slices.SortFunc(list, func(a, b typeInfo) int { return strings.Compare(a.name, b.name) })
	} else {
		list = allTypes
	}
	var matched []xInstanceType
	for _, ti := range list {
		ok := true
		for _, f := range fs {
			ok = ok && slices.ContainsFunc(typeFilters[f.Name](ti), func(v string) bool { return matchAny(f.Values, v) })
		}
		if ok {
			matched = append(matched, ti.xml())
		}
	}
	out := &describeInstanceTypesResponse{}
	out.Types, out.NextToken = pageOf(matched, start, max, "itype")
	return out, nil
}
