//go:build !unix

package main

// lockDataDir takes no lock where flock does not exist: servers are run on
// Unix, and this keeps the command building elsewhere for development.
func lockDataDir(string) (release func(), err error) { return func() {}, nil }
