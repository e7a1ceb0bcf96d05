// Package apply executes a plan.Plan step by step against the two servers,
// writing a checkpoint to the state directory after every step so that an
// interrupted run resumes where it stopped. It reports typed events and
// never prints.
package apply
