package identity

import "slices"

func slicesSortCompact(s *[]string) {
	slices.Sort(*s)
	*s = slices.Compact(*s)
}
