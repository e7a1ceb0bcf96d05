package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// File is the saved form of a plan (plan -o plan.json): the plan exactly as
// reviewed, wrapped in an envelope that holds the only time in it.
type File struct {
	// Kind is always "pgferry-plan", so other JSON is refused clearly.
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	Plan      Plan      `json:"plan"`
}

// FileKind marks a plan file.
const FileKind = "pgferry-plan"

// WriteFile writes p in its envelope, created at now.
func WriteFile(w io.Writer, p *Plan, now time.Time) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(File{Kind: FileKind, CreatedAt: now.UTC(), Plan: *p})
}

// ErrNotPlanFile is returned for JSON that is not a pgferry plan file.
var ErrNotPlanFile = errors.New("not a pgferry plan file")

// ReadFile reads a plan file written by WriteFile.
func ReadFile(r io.Reader) (*File, error) {
	var f File
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPlanFile, err)
	}
	if f.Kind != FileKind {
		return nil, ErrNotPlanFile
	}
	if f.Plan.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("plan format version %d; this pgferry reads %d: plan again", f.Plan.FormatVersion, FormatVersion)
	}
	return &f, nil
}
