package state

import (
	"os"
	"syscall"
)

// datasync writes f's data and what reading it back needs (its size, its
// blocks), not its times: fdatasync(2).
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
