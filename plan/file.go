package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// File is the saved form of a plan (plan -o plan.json): the plan exactly as
// reviewed, wrapped in an envelope that holds the only time in it.
type File struct {
	// Kind is always "pghaul-plan", so other JSON is refused clearly.
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	Plan      Plan      `json:"plan"`
	// Source and Target are the structural facts the fingerprints cover,
	// so a stale plan can say what changed.
	Source Snapshot `json:"source_snapshot"`
	Target Snapshot `json:"target_snapshot"`
}

// FileKind marks a plan file.
const FileKind = "pghaul-plan"

// WriteFile writes p in its envelope, created at now, with the structural
// facts of the snapshots it was built from.
func WriteFile(w io.Writer, p *Plan, src, dst Snapshot, now time.Time) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(File{Kind: FileKind, CreatedAt: now.UTC(), Plan: *p, Source: src.structural(), Target: dst.structural()})
}

// StaleError says why a saved plan no longer matches the servers or file.
type StaleError struct{ Changes []string }

func (e *StaleError) Error() string {
	return "the plan is stale: " + strings.Join(e.Changes, "; ") + "; plan again"
}

// Check compares a saved plan with the config hash and fresh snapshots.
func (f *File) Check(configHash string, src, dst Snapshot) error {
	var changes []string
	if f.Plan.ConfigHash != configHash {
		changes = append(changes, "the migration file changed")
	}
	if src.Fingerprint() != f.Plan.SourceFingerprint {
		for _, c := range Diff(f.Source, src, 5) {
			changes = append(changes, "source: "+c)
		}
	}
	if dst.Fingerprint() != f.Plan.TargetFingerprint {
		for _, c := range Diff(f.Target, dst, 5) {
			changes = append(changes, "target: "+c)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	return &StaleError{Changes: changes}
}

// ErrNotPlanFile is returned for JSON that is not a pghaul plan file.
var ErrNotPlanFile = errors.New("not a pghaul plan file")

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
		return nil, fmt.Errorf("plan format version %d; this pghaul reads %d: plan again", f.Plan.FormatVersion, FormatVersion)
	}
	return &f, nil
}

// SameOrigin reports whether p was planned from the same file and servers
// as o, with as many steps: a saved plan given to resume the state that
// started from it.
func (p *Plan) SameOrigin(o *Plan) bool {
	return p.SourceFingerprint == o.SourceFingerprint && p.TargetFingerprint == o.TargetFingerprint &&
		p.ConfigHash == o.ConfigHash && len(p.Steps) == len(o.Steps)
}
