package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Method is how databases are moved: auto picks replication where its
// prerequisites hold and dump elsewhere.
type Method string

// The methods.
const (
	MethodAuto        Method = "auto"
	MethodReplication Method = "replication"
	MethodDump        Method = "dump"
)

// PasswordMode is how role passwords travel (DESIGN.md section 5).
type PasswordMode string

// The password modes.
const (
	PasswordsAuto        PasswordMode = "auto"
	PasswordsCopy        PasswordMode = "copy"
	PasswordsPlaceholder PasswordMode = "placeholder"
	PasswordsNone        PasswordMode = "none"
)

// InitialCopy is how the replication method fills the target before streaming.
type InitialCopy string

// The initial copy modes.
const (
	InitialCopySnapshot     InitialCopy = "snapshot"
	InitialCopySubscription InitialCopy = "subscription"
)

// VerifyMode is what the cut-over compares before it switches.
type VerifyMode string

// The verify modes.
const (
	VerifyCounts    VerifyMode = "counts"
	VerifyChecksums VerifyMode = "checksums"
	VerifyNone      VerifyMode = "none"
)

// Methods, PasswordModes, InitialCopies and VerifyModes list the allowed
// values in order.
var (
	VerifyModes   = []string{string(VerifyCounts), string(VerifyChecksums), string(VerifyNone)}
	Methods       = []string{string(MethodAuto), string(MethodReplication), string(MethodDump)}
	PasswordModes = []string{string(PasswordsAuto), string(PasswordsCopy), string(PasswordsPlaceholder), string(PasswordsNone)}
	InitialCopies = []string{string(InitialCopySnapshot), string(InitialCopySubscription)}
)

// UnmarshalYAML accepts one of Methods.
func (m *Method) UnmarshalYAML(n *yaml.Node) error { return decodeEnum(n, (*string)(m), Methods) }

// UnmarshalYAML accepts one of PasswordModes.
func (p *PasswordMode) UnmarshalYAML(n *yaml.Node) error {
	return decodeEnum(n, (*string)(p), PasswordModes)
}

// UnmarshalYAML accepts one of VerifyModes.
func (v *VerifyMode) UnmarshalYAML(n *yaml.Node) error {
	return decodeEnum(n, (*string)(v), VerifyModes)
}

// UnmarshalYAML reads a list of non-empty shell commands.
func (c *Commands) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("expected a list of shell commands like [\"./pause.sh\"], got %s", show(n))
	}
	var out Commands
	var errs []error
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode || strings.TrimSpace(item.Value) == "" {
			errs = append(errs, at(item, fmt.Errorf("expected a shell command, got %s", show(item))))
			continue
		}
		out = append(out, item.Value)
	}
	*c = out
	return errors.Join(errs...)
}

// UnmarshalYAML accepts one of InitialCopies.
func (c *InitialCopy) UnmarshalYAML(n *yaml.Node) error {
	return decodeEnum(n, (*string)(c), InitialCopies)
}

func decodeEnum(n *yaml.Node, dst *string, allowed []string) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected one of %s", strings.Join(allowed, ", "))
	}
	if !slices.Contains(allowed, n.Value) {
		msg := fmt.Sprintf("%q is not one of %s", n.Value, strings.Join(allowed, ", "))
		if s := suggest(n.Value, allowed); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return fmt.Errorf("%s", msg)
	}
	*dst = n.Value
	return nil
}
