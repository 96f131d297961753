//go:build !linux && !darwin

package attn

// SystemMemory reports that the available memory is unknown here: the
// memory check is skipped (the element limit still applies).
func SystemMemory() (uint64, bool) { return 0, false }
