package view

import (
	"fmt"
	"io"

	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/table"
	"github.com/pghaul/pghaul/internal/words"
)

// Verify is what verify prints: a row per compared object.
type Verify struct {
	Checks    []inspect.TableCheck `json:"checks"`
	Different int                  `json:"different"`
}

// NewVerify counts the checks that differ.
func NewVerify(checks []inspect.TableCheck) Verify {
	v := Verify{Checks: checks}
	for _, c := range checks {
		if !c.Equal() {
			v.Different++
		}
	}
	return v
}

// Tables counts the tables compared and those that differ.
func (v Verify) Tables() (tables, different int) {
	for _, c := range v.Checks {
		if c.Kind == inspect.KindTable {
			tables++
			if !c.Equal() {
				different++
			}
		}
	}
	return tables, different
}

// Table writes the checks and how many tables are equal: each side's
// count, and the hash once when both sides have the same.
func (v Verify) Table(w io.Writer, width int) error {
	var rows [][]string
	for _, c := range v.Checks {
		rows = append(rows, []string{c.Database, c.Name(), count(c.Kind, c.SourceRows), count(c.Kind, c.TargetRows), result(c)})
	}
	if err := table.Write(w, width, []string{"DATABASE", "OBJECT", "SOURCE", "TARGET", "RESULT"}, rows); err != nil {
		return err
	}
	tables, different := v.Tables()
	fmt.Fprintf(w, "%d of %d tables equal\n", tables-different, tables)
	return nil
}

func result(c inspect.TableCheck) string {
	switch {
	case c.Err != "":
		return "ERROR: " + c.Err
	case !c.Equal() && c.SourceHash != c.TargetHash:
		return fmt.Sprintf("DIFFERENT: hash %s on the source, %s on the target", c.SourceHash, c.TargetHash)
	case !c.Equal():
		return "DIFFERENT"
	case c.SourceHash != "":
		return "equal, hash " + c.SourceHash
	}
	return "equal"
}

// count is one side's count of rows, sequences or large objects.
func count(kind string, n int64) string {
	noun := map[string]string{inspect.KindSequences: "sequence", inspect.KindLargeObjects: "large object"}[kind]
	if noun == "" {
		noun = "row"
	}
	return words.Count(int(n), noun)
}
