// Package view is what pghaul's commands print: for each command one
// model, filled by the command from what it did, with a table rendering
// for people and a JSON rendering for automation. Renderings depend only
// on the model, so fixtures pin them in golden files.
package view

import (
	"encoding/json"
	"io"
)

// Format is how a view is rendered.
type Format string

// The formats of the views.
const (
	Table Format = "table"
	JSON  Format = "json"
)

// View renders itself as a table or as JSON.
type View interface {
	// Table writes the view for people, its tables fitted to width
	// columns (0: no limit).
	Table(w io.Writer, width int) error
}

// Render writes v in format f: JSON is v itself, indented (empty lists
// as [], never null); a table is fitted to width.
func Render(w io.Writer, v View, f Format, width int) error {
	if f == JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return v.Table(w, width)
}
