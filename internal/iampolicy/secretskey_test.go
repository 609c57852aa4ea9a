package iampolicy

import (
	"slices"
	"testing"
)

func TestSecretsKey(t *testing.T) {
	tests := []struct {
		key, resource, alias string
	}{
		{"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", ""},
		{"1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:*:*:key/1234abcd-12ab-34cd-56ef-1234567890ab", ""},
		{"alias/kiln", "*", "alias/kiln"},
		{"arn:aws:kms:us-east-1:111122223333:alias/kiln", "*", "alias/kiln"},
	}
	for _, tt := range tests {
		st := SecretsKey(tt.key)
		if st.Sid != SidSecretsKey || !slices.Equal(st.Action, []string{"kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"}) {
			t.Errorf("SecretsKey(%q) = %+v; want the three actions kiln's secrets use", tt.key, st)
		}
		if !slices.Equal(st.Resource, []string{tt.resource}) {
			t.Errorf("SecretsKey(%q).Resource = %v; want [%s]", tt.key, st.Resource, tt.resource)
		}
		if got := st.Condition["StringEquals"]["kms:RequestAlias"]; tt.alias != "" && !slices.Equal(got, []string{tt.alias}) || tt.alias == "" && st.Condition != nil {
			t.Errorf("SecretsKey(%q).Condition = %v; want alias %q", tt.key, st.Condition, tt.alias)
		}
	}
}
