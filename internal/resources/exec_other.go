//go:build !unix

package resources

import "os/exec"

// ownGroup: without process groups, cancellation kills the shell only.
func ownGroup(*exec.Cmd) {}
