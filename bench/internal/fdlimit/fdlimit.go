// Package fdlimit raises the process's open-files limit for the benchmark
// tools, which hold thousands of sockets at once.
package fdlimit

import (
	"fmt"
	"syscall"
)

// Raise lifts the soft open-files limit to the hard limit and returns an
// error naming both limits when need descriptors still do not fit.
func Raise(need uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return fmt.Errorf("raising the open-files limit: %w", err)
		}
	}
	if l.Cur < need {
		return fmt.Errorf("the open-files limit is %d (hard %d) but %d are needed; raise the hard limit (ulimit -Hn)", l.Cur, l.Max, need)
	}
	return nil
}

// Limits returns the soft and hard open-files limits (0, 0 when they
// cannot be read).
func Limits() (soft, hard uint64) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0
	}
	return l.Cur, l.Max
}
