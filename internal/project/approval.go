package project

// An approval gate (an environment's approval: manual): the environment's
// automatic promotion, once the previous environment has soaked, waits
// until someone approves it (kiln approve PROJECT ENV).

// Approval values.
const (
	ApprovalNone   = ""
	ApprovalManual = "manual"
)

// checkApproval checks environment e (the i-th) of the file's
// environments: a gate needs an automatic promotion after a soak.
func (pp *projectParser) checkApproval(e Environment, i int, prefix string, at func(string) int) {
	switch {
	case e.Approval == ApprovalNone:
	case e.Approval != ApprovalManual:
		pp.errorf(at("approval"), prefix+".approval", "want manual, not %q", e.Approval)
	case i == 0:
		pp.errorf(at("approval"), prefix+".approval", "the first environment has no previous one to soak: an approval gate follows a soak")
	case e.Promotion != PromoteAuto:
		pp.errorf(at("approval"), prefix+".approval", "needs promotion: auto (a manual promotion is its own approval)")
	}
}
