package view

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/pghaul/pghaul/internal/table"
)

// Cleanup is what cleanup did (or would do, with --dry-run).
type Cleanup struct {
	Actions []CleanupAction `json:"actions"`
}

// CleanupAction is one thing cleanup did: "dropped" and an object, "kept
// the write freeze of" and a database, ...; Detail follows the object.
type CleanupAction struct {
	Action string `json:"action"`
	Object string `json:"object"`
	Detail string `json:"detail,omitempty"`
}

// Add records an action.
func (c *Cleanup) Add(action, object, detail string) {
	c.Actions = append(c.Actions, CleanupAction{Action: action, Object: object, Detail: detail})
}

// MarshalJSON writes no actions as an empty list.
func (c Cleanup) MarshalJSON() ([]byte, error) {
	type plain Cleanup
	if c.Actions == nil {
		c.Actions = []CleanupAction{}
	}
	return json.Marshal(plain(c))
}

// Table writes a line per action, or that there was nothing to do.
func (c Cleanup) Table(w io.Writer, width int) error {
	if len(c.Actions) == 0 {
		_, err := fmt.Fprintln(w, "nothing to clean up: no replication object of this migration exists")
		return err
	}
	for _, a := range c.Actions {
		line := a.Action + " " + a.Object
		if a.Detail != "" {
			line += " " + a.Detail
		}
		if _, err := fmt.Fprintln(w, table.Wrap(line, width)); err != nil {
			return err
		}
	}
	return nil
}
