package declared

import (
	"fmt"
	"unicode/utf8"
)

// Limits on what a repository may ask for. A mistaken or hostile
// repository must not make the agent spend minutes or gigabytes before it
// refuses, so each is checked before the work it bounds: the file size
// before YAML decoding, the number of names before any name is validated.
const (
	// MaxFileSize is the largest manifest file certsync reads, in bytes.
	// A larger file is refused unread, with a Problem.
	MaxFileSize = 1 << 20

	// MaxNames is the most dnsNames a Certificate may have: Let's
	// Encrypt's limit of identifiers per order.
	MaxNames = 100

	// MaxNamesProfile is the most dnsNames under the ACME profiles of
	// limitedProfile (Let's Encrypt's tlsserver and shortlived).
	MaxNamesProfile = 25

	// MaxAnnotationsSize is the largest total size (keys plus values) of
	// spec.secretTemplate.annotations: the API server's limit for the
	// annotations of one object (TotalAnnotationSizeLimitB), which would
	// otherwise refuse the Secret only after it was issued.
	MaxAnnotationsSize = 256 << 10

	// MaxProblemsPerFile is how many Problems one file may report; past
	// it, the rest of the file is left unread (and one more Problem says so).
	MaxProblemsPerFile = 100

	// RFC 1123 limits of a DNS name and of each of its labels, in bytes.
	maxDNSName  = 253
	maxDNSLabel = 63

	// maxQuoted is how much of a value an error message quotes.
	maxQuoted = 80
)

// limitedProfile reports whether an ACME profile limits an order to
// MaxNamesProfile identifiers. The names are Let's Encrypt's.
func limitedProfile(profile string) bool {
	return profile == "tlsserver" || profile == "shortlived"
}

// fileTooLarge is the Problem for a file over MaxFileSize, or nil. It looks
// at the length alone, so a huge file is refused in constant time.
func fileTooLarge(f File) *Problem {
	if len(f.Content) <= MaxFileSize {
		return nil
	}
	return &Problem{
		Source: Source{File: f.Path, Line: 1},
		Err:    fmt.Errorf("file is %d bytes; certsync reads manifests up to 1 MiB: split it into several files (until this is fixed nothing is pruned)", len(f.Content)),
	}
}

// clip shortens s for an error message: an error must stay readable, and
// must not copy a megabyte of a hostile value into logs.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
