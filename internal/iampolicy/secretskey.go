package iampolicy

import "strings"

// SidSecretsKey names the statement that lets kiln serve use the AWS KMS
// key its secrets are sealed under (--kms-key-id).
const SidSecretsKey = "KilnSecretsKey"

// SecretsKey is the statement kiln serve needs for the KMS master key
// keyID (an ARN, a key id, or an alias): DescribeKey at start,
// GenerateDataKey to seal a secret, Decrypt to open one. A key id is
// scoped to that key in any region and account; an alias cannot be
// scoped by a key resource, so it gets the key the alias names by the
// kms:RequestAlias condition.
func SecretsKey(keyID string) Statement {
	st := Statement{Sid: SidSecretsKey, Effect: "Allow", Action: []string{"kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"}}
	switch {
	case strings.HasPrefix(keyID, "arn:") && strings.Contains(keyID, ":alias/"):
		st.Resource = []string{"*"}
		st.Condition = map[string]map[string][]string{"StringEquals": {"kms:RequestAlias": {keyID[strings.Index(keyID, ":alias/")+1:]}}}
	case strings.HasPrefix(keyID, "alias/"):
		st.Resource = []string{"*"}
		st.Condition = map[string]map[string][]string{"StringEquals": {"kms:RequestAlias": {keyID}}}
	case strings.HasPrefix(keyID, "arn:"):
		st.Resource = []string{keyID}
	default:
		st.Resource = []string{"arn:aws:kms:*:*:key/" + keyID}
	}
	return st
}
