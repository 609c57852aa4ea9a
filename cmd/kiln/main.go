// Command kiln keeps EC2 infrastructure converged and bakes AMIs; see
// package cli for the commands and exit codes.
package main

import (
	"os"

	"kiln/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
