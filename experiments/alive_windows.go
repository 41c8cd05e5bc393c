//go:build windows

package experiments

import "os/exec"

// processAlive cannot probe a process cheaply here; a lease then expires by age.
func processAlive(pid int) bool { return true }

func setProcessGroup(cmd *exec.Cmd) {}

func terminate(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

func kill(cmd *exec.Cmd) { terminate(cmd) }
