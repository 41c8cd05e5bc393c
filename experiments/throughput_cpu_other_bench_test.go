//go:build !unix

package experiments

import "time"

// processCPU is not measured on this system (0).
func processCPU() time.Duration { return 0 }
