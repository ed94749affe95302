package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
)

// binDir holds the binaries the deployments run: NODEPOOL_BIN_DIR, or the launcher and
// the simulated clouds built from this tree next to bin/temporal-dev.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	binDir = os.Getenv("NODEPOOL_BIN_DIR")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/nodepool-launcher", "../cmd/simcloud", "../cmd/ec2sim")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building binaries:", err)
			return 1
		}
		temporal, err := devstack.TemporalDevBinary()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.Symlink(temporal, filepath.Join(dir, "temporal-dev")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
	}
	return m.Run()
}
