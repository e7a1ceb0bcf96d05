// Package table writes the ASCII tables of pghaul's output: the one place
// that knows tablewriter. The bytes depend only on the rows and the width
// asked for (no terminal detection here), so renderings can be
// golden-tested.
package table

import (
	"io"
	"strings"
	"unicode/utf8"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// cellMax is the widest a cell grows before it wraps, whatever the width;
// wordMax the longest word a narrowed column still keeps whole (a finding
// code, a role name), where a longer one (a URI) is cut.
const (
	cellMax = 48
	wordMax = 32
)

// Write writes an ASCII table with the header as given. Cells wrap at
// spaces (a word longer than its column is cut): at 48 characters, and
// narrower where the table would otherwise be wider than width (0: no
// limit). The widest columns give way first: cells' words (up to 32
// characters) stay whole where the width allows, headers' always.
func Write(w io.Writer, width int, header []string, rows [][]string) error {
	widths := fit(width, header, rows)
	t := tablewriter.NewTable(w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleASCII)})),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
	)
	t.Header(wrapRow(header, widths))
	for _, r := range rows {
		if err := t.Append(wrapRow(r, widths)); err != nil {
			return err
		}
	}
	return t.Render()
}

// fit is each column's width: its widest line up to cellMax, narrowed
// until the table fits in width: first no further than its longest word
// (up to wordMax), then, if it must, down to its header's longest word.
func fit(width int, header []string, rows [][]string) []int {
	n := len(header)
	widths, words, heads := make([]int, n), make([]int, n), make([]int, n)
	for i, h := range header {
		widths[i] = min(runes(h), cellMax)
		for _, word := range strings.Fields(h) {
			heads[i] = max(heads[i], runes(word))
		}
		heads[i] = max(heads[i], 4)
	}
	for _, r := range rows {
		for i := 0; i < n && i < len(r); i++ {
			for _, line := range strings.Split(r[i], "\n") {
				widths[i] = max(widths[i], min(runes(line), cellMax))
			}
			for _, word := range strings.Fields(r[i]) {
				words[i] = max(words[i], min(runes(word), wordMax))
			}
		}
	}
	for i := range words {
		words[i] = max(words[i], heads[i])
	}
	if width <= 0 {
		return widths
	}
	// Each column takes its content, a space either side and a border.
	total := 1
	for _, w := range widths {
		total += w + 3
	}
	for _, floor := range [][]int{words, heads} {
		for total > width {
			i := widest(widths, floor)
			if i < 0 {
				break // as narrow as this floor goes
			}
			widths[i]--
			total--
		}
	}
	return widths
}

// widest is the widest column that may still narrow, or -1.
func widest(widths, floor []int) int {
	best := -1
	for i, w := range widths {
		if w > floor[i] && (best < 0 || w > widths[best]) {
			best = i
		}
	}
	return best
}

func wrapRow(row []string, widths []int) []string {
	out := make([]string, len(row))
	for i, cell := range row {
		if i < len(widths) {
			cell = Wrap(cell, widths[i])
		}
		out[i] = cell
	}
	return out
}

// Wrap breaks s into lines of at most width characters at spaces,
// cutting a longer word; its own line breaks stay.
func Wrap(s string, width int) string {
	if width <= 0 {
		return s
	}
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for runes(word) > width {
				if line != "" {
					lines, line = append(lines, line), ""
				}
				r := []rune(word)
				lines, word = append(lines, string(r[:width])), string(r[width:])
			}
			switch {
			case line == "":
				line = word
			case runes(line)+1+runes(word) <= width:
				line += " " + word
			default:
				lines, line = append(lines, line), word
			}
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func runes(s string) int { return utf8.RuneCountInString(s) }
