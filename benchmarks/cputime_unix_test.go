//go:build unix

package benchmarks

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time the whole process has used, user and
// system, in all its threads (the garbage collector's included). Unlike
// wall time it hardly moves when other processes load the machine.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
