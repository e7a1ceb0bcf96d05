//go:build !crashpoints

package apply

// crashPoint is where a test build (-tags crashpoints) can kill the process
// to test resume; in a normal build it does nothing.
func crashPoint(string) {}

// failPoint is where a test build (-tags crashpoints) can make a step
// fail; in a normal build it does nothing.
func failPoint(string) error { return nil }

func crashWanted(string) bool { return false }
