package view

import (
	"fmt"
	"io"

	"github.com/pghaul/pghaul/inspect"
	"github.com/pghaul/pghaul/internal/table"
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

// Table writes the checks and how many tables are equal.
func (v Verify) Table(w io.Writer) error {
	var rows [][]string
	for _, c := range v.Checks {
		result := "equal"
		if !c.Equal() {
			result = "DIFFERENT"
			if c.Err != "" {
				result = "ERROR: " + c.Err
			}
		}
		rows = append(rows, []string{c.Database, c.Name(), side(c.Kind, c.SourceRows, c.SourceHash), side(c.Kind, c.TargetRows, c.TargetHash), result})
	}
	if err := table.Write(w, []string{"DATABASE", "OBJECT", "SOURCE", "TARGET", "RESULT"}, rows); err != nil {
		return err
	}
	tables, different := v.Tables()
	fmt.Fprintf(w, "%d of %d tables equal\n", tables-different, tables)
	return nil
}

// side is one side of a check: its count and hash.
func side(kind string, n int64, hash string) string {
	noun := map[string]string{inspect.KindSequences: "sequence", inspect.KindLargeObjects: "object"}[kind]
	if noun == "" {
		noun = "row"
	}
	s := fmt.Sprintf("%d %s", n, noun)
	if n != 1 {
		s += "s"
	}
	if hash != "" {
		s += " " + hash
	}
	return s
}
