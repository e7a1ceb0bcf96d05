package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pghaul/pghaul/internal/table"
	"github.com/pghaul/pghaul/internal/words"
)

// Format is an output format of a rendered plan.
type Format string

// The formats.
const (
	FormatTable    Format = "table"
	FormatMarkdown Format = "markdown"
	FormatJSON     Format = "json"
)

// Render writes p in format f, its tables fitted to width columns (0: no
// limit; markdown and JSON are never fitted). Output is byte-stable for
// golden files.
func Render(w io.Writer, p *Plan, f Format, width int) error {
	switch f {
	case FormatJSON:
		return RenderJSON(w, p)
	case FormatMarkdown:
		return renderMarkdown(w, p)
	case FormatTable, "":
		return renderText(w, p, width)
	}
	return fmt.Errorf("unknown format %q: use table, markdown or json", f)
}

// RenderJSON writes the plan as the documented JSON document.
func RenderJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// Summary is the plan's last line: "2 blockers, 3 warnings, 14 steps,
// 1.2 GiB in 42 tables".
func (p *Plan) Summary() string {
	t := p.Totals
	return fmt.Sprintf("%s, %s, %s, %s in %s", words.Count(t.Blockers, "blocker"), words.Count(t.Warnings, "warning"), words.Count(t.Steps, "step"),
		byteString(t.Bytes), words.Count(t.Tables, "table"))
}

func renderText(w io.Writer, p *Plan, width int) error {
	fmt.Fprintf(w, "Source: %s (PostgreSQL %s)\nTarget: %s (PostgreSQL %s)\n\n", p.Source.URI, p.Source.Version, p.Target.URI, p.Target.Version)
	sections := []struct {
		title  string
		header []string
		rows   [][]string
	}{
		{"Databases", []string{"DATABASE", "METHOD", "TARGET", "TABLES", "SIZE", "WHY"}, databaseRows(p)},
		{"Findings", []string{"SEVERITY", "CODE", "FINDING"}, findingTextRows(p)},
		{"Steps", stepHeader(p, "#", "SCOPE", "ACTION", "DETAIL", "STATUS"), shortScope(stepRows(p))},
	}
	for _, s := range sections {
		if len(s.rows) == 0 {
			fmt.Fprintf(w, "%s: none\n\n", s.title)
			continue
		}
		fmt.Fprintf(w, "%s:\n", s.title)
		if err := table.Write(w, width, s.header, s.rows); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintln(w, p.Summary())
	return err
}

func databaseRows(p *Plan) [][]string {
	var rows [][]string
	for _, d := range p.Databases {
		target := "exists"
		if d.Create {
			target = "create"
		}
		rows = append(rows, []string{d.Name, string(d.Method), target, strconv.Itoa(d.Tables), byteString(d.Bytes), d.Reason})
	}
	return rows
}

func findingRows(p *Plan) [][]string {
	var rows [][]string
	for _, f := range p.Findings {
		rows = append(rows, []string{string(f.Severity), f.Code, f.Object, f.Message, f.Fix})
	}
	return rows
}

// shortScope drops the "database " every database step's scope starts
// with: a terminal has no room for it.
func shortScope(rows [][]string) [][]string {
	for _, r := range rows {
		r[1] = strings.TrimPrefix(r[1], "database ")
	}
	return rows
}

// findingTextRows are the findings for a terminal: the object, message
// and fix in one column, which takes what the table's width leaves.
func findingTextRows(p *Plan) [][]string {
	var rows [][]string
	for _, f := range p.Findings {
		text := f.Object + ": " + f.Message
		if f.Fix != "" {
			text += "\nfix: " + f.Fix
		}
		rows = append(rows, []string{string(f.Severity), f.Code, text})
	}
	return rows
}

// hasProgress reports whether the plan is shown with its progress.
func hasProgress(p *Plan) bool {
	for _, s := range p.Steps {
		if s.Status != "" {
			return true
		}
	}
	return false
}

func stepHeader(p *Plan, cols ...string) []string {
	if hasProgress(p) {
		return cols
	}
	return cols[:len(cols)-1]
}

func stepRows(p *Plan) [][]string {
	var rows [][]string
	for i, s := range p.Steps {
		row := []string{strconv.Itoa(i + 1), s.Scope, string(s.Kind), s.Detail}
		if hasProgress(p) {
			row = append(row, s.Status)
		}
		rows = append(rows, row)
	}
	return rows
}

func renderMarkdown(w io.Writer, p *Plan) error {
	fmt.Fprintf(w, "## pghaul plan\n\n- **Source:** `%s` (PostgreSQL %s)\n- **Target:** `%s` (PostgreSQL %s)\n- **Summary:** %s\n\n",
		p.Source.URI, p.Source.Version, p.Target.URI, p.Target.Version, p.Summary())
	mdTable(w, "Databases", []string{"Database", "Method", "Target", "Tables", "Size", "Why"}, databaseRows(p))
	rows := findingRows(p)
	for i, f := range p.Findings {
		rows[i][1] = fmt.Sprintf("[%s](%s)", f.Code, f.Doc)
	}
	mdTable(w, "Findings", []string{"Severity", "Code", "Object", "Message", "Fix"}, rows)
	mdTable(w, "Steps", stepHeader(p, "#", "Scope", "Action", "Detail", "Status"), stepRows(p))
	return nil
}

func mdTable(w io.Writer, title string, header []string, rows [][]string) {
	fmt.Fprintf(w, "### %s\n\n", title)
	if len(rows) == 0 {
		fmt.Fprint(w, "None.\n\n")
		return
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = mdEscape(c)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
}

// mdEscape keeps a cell on one row: pipes escaped, newlines as spaces.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
