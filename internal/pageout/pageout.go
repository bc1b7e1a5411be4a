// Package pageout hands back to the kernel the pages of the running
// executable that the process touched once and will not touch again.
//
// A Go binary's code, read-only data and pc tables are file pages mapped
// from the executable. Starting certsync runs the init functions of some
// 2,400 packages (client-go's schemes, the protobuf registries of the
// cloud SDKs sops and lego link in, lego's DNS providers), and the kernel
// reads ahead around each page touched: right after start, about 75 MB of
// the binary is resident, most of which no pass ever touches again. Those
// pages are clean: the kernel reclaims them under memory pressure, but
// until then they count in the process's RSS and in its container's
// memory (the page cache is charged to the cgroup that faulted it in).
//
// Executable asks the kernel to reclaim them now (madvise MADV_PAGEOUT,
// Linux 5.4+): clean file pages mapped by this process alone are dropped,
// not written anywhere; pages shared with another process stay. Whatever
// the process touches again afterwards faults back in from the page cache
// or the disk, once, and stays. Call it once, after the work that shows
// which pages are needed (a daemon's first pass), not on every pass.
package pageout

// Result is what a call found: the bytes of the executable's read-only
// mappings it asked the kernel to reclaim.
type Result struct {
	Mapped int64
}
