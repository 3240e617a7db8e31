package identity

import (
	"slices"
	"unicode"
)

func slicesSortCompact(s *[]string) {
	slices.Sort(*s)
	*s = slices.Compact(*s)
}

func utf8Printable(s string) bool {
	for _, r := range s {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
