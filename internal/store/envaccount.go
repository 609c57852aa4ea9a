package store

// EnvAccount is the AWS account an environment lives in when it is not the
// bakery's own: the role kiln assumes there (with its external id and
// session name, both optional).
type EnvAccount struct {
	RoleARN     string `json:"role_arn"`
	ExternalID  string `json:"external_id,omitempty"`
	SessionName string `json:"session_name,omitempty"`
}
