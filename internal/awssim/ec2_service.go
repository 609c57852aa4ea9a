package awssim

// EC2 (Query protocol, Version 2016-11-15). The instances and their
// guest, instance types, images and snapshots, tags, security groups and
// subnets, security group rules, VPCs, key pairs, instance profile
// associations and launch templates each live in their own file; this is
// the service's action table, one line per action.

const (
	ec2Version   = "2016-11-15"
	ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
)

var ec2Service = &service{
	name:    "ec2",
	version: ec2Version,
	proto:   ec2Query{namespace: ec2Namespace},
	actions: ec2Actions,
	admit:   (*Sim).admit, // throttle.go
	// EC2's control endpoints are the simulator's own (control.go).
}

var ec2Actions = map[string]action{
	// Instances (ec2_instances.go).
	"RunInstances":              (*Sim).runInstances,
	"DescribeInstances":         (*Sim).describeInstances,
	"DescribeInstanceStatus":    (*Sim).describeInstanceStatus,
	"StartInstances":            (*Sim).startInstances,
	"StopInstances":             (*Sim).stopInstances,
	"RebootInstances":           (*Sim).rebootInstances,
	"TerminateInstances":        (*Sim).terminateInstances,
	"ModifyInstanceAttribute":   (*Sim).modifyInstanceAttribute,
	"DescribeInstanceAttribute": (*Sim).describeInstanceAttribute,
	"GetConsoleOutput":          (*Sim).getConsoleOutput,

	// Instance types (ec2_instancetypes.go).
	"DescribeInstanceTypes": (*Sim).describeInstanceTypes,

	// Tags (ec2_tags.go).
	"CreateTags":   (*Sim).createTags,
	"DeleteTags":   (*Sim).deleteTags,
	"DescribeTags": (*Sim).describeTags,

	// Images and snapshots (ec2_images.go).
	"CreateImage":       (*Sim).createImage,
	"DescribeImages":    (*Sim).describeImages,
	"DeregisterImage":   (*Sim).deregisterImage,
	"DescribeSnapshots": (*Sim).describeSnapshots,
	"DeleteSnapshot":    (*Sim).deleteSnapshot,

	// Deprecation and disabling (ec2_imagelife.go).
	"EnableImageDeprecation":  (*Sim).enableImageDeprecation,
	"DisableImageDeprecation": (*Sim).disableImageDeprecation,
	"DisableImage":            (*Sim).disableImage,
	"EnableImage":             (*Sim).enableImage,

	// Distribution: copies between regions (ec2_copyimage.go), sharing
	// (ec2_imageattrs.go); the regions themselves are regions.go's.
	"CopyImage":                 (*Sim).copyImage,
	"ModifyImageAttribute":      (*Sim).modifyImageAttribute,
	"DescribeImageAttribute":    (*Sim).describeImageAttribute,
	"ModifySnapshotAttribute":   (*Sim).modifySnapshotAttribute,
	"DescribeSnapshotAttribute": (*Sim).describeSnapshotAttribute,

	// Security groups and subnets (ec2_secgroups.go).
	"CreateSecurityGroup":    (*Sim).createSecurityGroup,
	"DescribeSecurityGroups": (*Sim).describeSecurityGroups,
	"DeleteSecurityGroup":    (*Sim).deleteSecurityGroup,
	"DescribeSubnets":        (*Sim).describeSubnets,

	// VPCs (ec2_vpcs.go).
	"DescribeVpcs": (*Sim).describeVpcs,

	// Security group rules (ec2_sgrules.go).
	"AuthorizeSecurityGroupIngress": (*Sim).authorizeIngress,
	"AuthorizeSecurityGroupEgress":  (*Sim).authorizeEgress,
	"RevokeSecurityGroupIngress":    (*Sim).revokeIngress,
	"RevokeSecurityGroupEgress":     (*Sim).revokeEgress,
	"DescribeSecurityGroupRules":    (*Sim).describeSecurityGroupRules,

	// Key pairs (ec2_keypairs.go).
	"CreateKeyPair":    (*Sim).createKeyPair,
	"ImportKeyPair":    (*Sim).importKeyPair,
	"DescribeKeyPairs": (*Sim).describeKeyPairs,
	"DeleteKeyPair":    (*Sim).deleteKeyPair,

	// Instance profile associations (ec2_iamprofile.go).
	"AssociateIamInstanceProfile":            (*Sim).associateIamInstanceProfile,
	"ReplaceIamInstanceProfileAssociation":   (*Sim).replaceIamInstanceProfileAssociation,
	"DisassociateIamInstanceProfile":         (*Sim).disassociateIamInstanceProfile,
	"DescribeIamInstanceProfileAssociations": (*Sim).describeIamInstanceProfileAssociations,

	// Launch templates (ec2_launchtemplate.go).
	"CreateLaunchTemplate":           (*Sim).createLaunchTemplate,
	"CreateLaunchTemplateVersion":    (*Sim).createLaunchTemplateVersion,
	"DescribeLaunchTemplates":        (*Sim).describeLaunchTemplates,
	"DescribeLaunchTemplateVersions": (*Sim).describeLaunchTemplateVersions,
	"ModifyLaunchTemplate":           (*Sim).modifyLaunchTemplate,
	"DeleteLaunchTemplate":           (*Sim).deleteLaunchTemplate,
}
