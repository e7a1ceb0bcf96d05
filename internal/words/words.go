// Package words writes counts for people: "1 table", "2 tables",
// "3 indexes", "1 entry", "4 entries".
package words

import (
	"fmt"
	"strconv"
	"strings"
)

// Count is n and noun, made plural unless n is 1.
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + Plural(noun)
}

// Plural is noun's plural by the regular English rules: -s, -es after
// s, x, z, ch, sh, and -ies for a consonant and y. A noun of several
// words ("large object") pluralizes its last.
func Plural(noun string) string {
	switch {
	case noun == "":
		return ""
	case strings.HasSuffix(noun, "s"), strings.HasSuffix(noun, "x"), strings.HasSuffix(noun, "z"),
		strings.HasSuffix(noun, "ch"), strings.HasSuffix(noun, "sh"):
		return noun + "es"
	case strings.HasSuffix(noun, "y") && len(noun) > 1 && !strings.ContainsAny(noun[len(noun)-2:len(noun)-1], "aeiou"):
		return noun[:len(noun)-1] + "ies"
	}
	return noun + "s"
}

// Agree is one when n is 1, else many: the verb that goes with a count
// ("1 table differs", "2 tables differ").
func Agree(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Some joins up to n names and says how many more there are.
func Some(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
