package project

import (
	"slices"

	"go.yaml.in/yaml/v3"

	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// A project's distribution, the same fields as aws:ami's: copy_to (regions
// each image is copied to), encrypt and kms_key_id (the copies'
// encryption), share_with (account ids), share_with_orgs and
// share_with_ous (organization and OU ARNs). Stored apart from the
// project's row (store.Distribution).

func (pp *projectParser) distributionFields(d *pipeline.Distribution) map[string]func(*yaml.Node) {
	return map[string]func(*yaml.Node){
		"copy_to":         func(n *yaml.Node) { d.CopyTo = pp.strList(n, "copy_to") },
		"encrypt":         func(n *yaml.Node) { d.Encrypt = pp.boolean(n, "encrypt") },
		"kms_key_id":      func(n *yaml.Node) { d.KMSKeyID = pp.str(n, "kms_key_id") },
		"share_with":      func(n *yaml.Node) { d.ShareWith = pp.strList(n, "share_with") },
		"share_with_orgs": func(n *yaml.Node) { d.ShareWithOrgs = pp.strList(n, "share_with_orgs") },
		"share_with_ous":  func(n *yaml.Node) { d.ShareWithOUs = pp.strList(n, "share_with_ous") },
	}
}

// DistributionRecord is d as the store keeps it.
func DistributionRecord(d pipeline.Distribution) store.Distribution {
	return store.Distribution{CopyTo: slices.Clone(d.CopyTo), Encrypt: d.Encrypt, KMSKeyID: d.KMSKeyID,
		ShareWith: slices.Clone(d.ShareWith), ShareWithOrgs: slices.Clone(d.ShareWithOrgs), ShareWithOUs: slices.Clone(d.ShareWithOUs)}
}

// DistributionFromRecord is the stored d back.
func DistributionFromRecord(d store.Distribution) pipeline.Distribution {
	return pipeline.Distribution{CopyTo: d.CopyTo, Encrypt: d.Encrypt, KMSKeyID: d.KMSKeyID,
		ShareWith: d.ShareWith, ShareWithOrgs: d.ShareWithOrgs, ShareWithOUs: d.ShareWithOUs}
}

// regions are the regions p's images live in: its own, then copy_to's.
func (p *Project) Regions() []string {
	return append([]string{p.Region}, p.Distribution.CopyTo...)
}
