//go:build !linux

package pageout

// Executable does nothing outside Linux: certsync's images run on Linux.
func Executable() (Result, error) { return Result{}, nil }
