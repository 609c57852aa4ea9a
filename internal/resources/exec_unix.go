//go:build unix

package resources

import (
	"os/exec"
	"syscall"
)

// ownGroup runs cmd in its own process group and makes cancellation kill
// the whole group, so a shell's children do not outlive a cancelled run.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
