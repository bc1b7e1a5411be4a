package memstat

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Residency is what of a process's executable is resident, by module.
type Residency struct {
	// File are the executable's file pages (code, read-only data, the
	// pc tables) by module: shared, clean, reclaimable.
	File map[string]int64
	// Anon are the executable's pages the process wrote (its .data and
	// .bss: package variables), by module: private, like the heap.
	Anon map[string]int64
	// Libraries are the resident bytes of every other file mapping (libc,
	// the dynamic loader), by path.
	Libraries map[string]int64
}

// FileTotal is the sum of File.
func (r *Residency) FileTotal() int64 { return sum(r.File) }

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst): present,
// swapped, and file-page-or-shared-anon. They are readable by the
// process's own user without privileges (only the frame numbers are not).
const (
	pagePresent = 1 << 63
	pageSwapped = 1 << 62
	pageFile    = 1 << 61
)

// Resident reads which pages of process pid's executable are resident and
// attributes them to modules. The executable must carry its symbol table
// (not built with -ldflags=-s); the caller needs the rights to read the
// process's pagemap (the same user, or ptrace rights).
func Resident(pid int) (*Residency, error) {
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	img, err := openImage(exe)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(exe)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", exe, err)
	}
	inode := st.Sys().(*syscall.Stat_t).Ino
	maps, err := readMaps(pid)
	if err != nil {
		return nil, err
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, fmt.Errorf("open pagemap of %d: %w", pid, err)
	}
	defer pm.Close()
	page := uint64(os.Getpagesize())
	r := &Residency{File: map[string]int64{}, Anon: map[string]int64{}, Libraries: map[string]int64{}}
	for _, m := range maps {
		if m.inode == 0 || m.path == "" {
			continue // anonymous: the heap, stacks; see Anon
		}
		entries, err := readPagemap(pm, m.start/page, (m.end-m.start)/page)
		if err != nil {
			return nil, fmt.Errorf("read pagemap of %d at %#x: %w", pid, m.start, err)
		}
		for i, e := range entries {
			if e&pagePresent == 0 {
				continue
			}
			if m.inode != inode {
				r.Libraries[m.path] += int64(page)
				continue
			}
			addr, ok := img.address(m.offset + uint64(i)*page)
			into := r.File
			if e&pageFile == 0 {
				into = r.Anon
			}
			if !ok {
				// Past the file's bytes: the zero-filled part of .bss.
				into["(section .bss)"] += int64(page)
				continue
			}
			img.add(into, addr, addr+page)
		}
	}
	// The .bss beyond the file is mapped anonymously right after the
	// last segment: attribute it by address too.
	for _, m := range maps {
		if m.inode != 0 {
			continue
		}
		if lo, hi, ok := img.bssRange(); ok && m.start < hi && m.end > lo {
			start, end := max(m.start, lo), min(m.end, hi)
			entries, err := readPagemap(pm, start/page, (end-start+page-1)/page)
			if err != nil {
				return nil, fmt.Errorf("read pagemap of %d at %#x: %w", pid, start, err)
			}
			for i, e := range entries {
				if e&pagePresent != 0 {
					a := start + uint64(i)*page
					img.add(r.Anon, a, min(a+page, end))
				}
			}
		}
	}
	return r, nil
}

// bssRange is the address range of the image's sections not backed by
// the file (.bss, .noptrbss), as the last spans cover them.
func (img *image) bssRange() (lo, hi uint64, ok bool) {
	var fileEnd uint64
	for _, p := range img.loads {
		fileEnd = max(fileEnd, p.Vaddr+p.Filesz)
	}
	if len(img.spans) == 0 {
		return 0, 0, false
	}
	last := img.spans[len(img.spans)-1].end
	return fileEnd, last, last > fileEnd
}

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end, offset uint64
	inode              uint64
	path               string
}

func readMaps(pid int) ([]mapping, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("read maps of %d: %w", pid, err)
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		m := mapping{}
		m.start, _ = strconv.ParseUint(lo, 16, 64)
		m.end, _ = strconv.ParseUint(hi, 16, 64)
		m.offset, _ = strconv.ParseUint(fields[2], 16, 64)
		m.inode, _ = strconv.ParseUint(fields[4], 10, 64)
		if len(fields) > 5 {
			m.path = fields[5]
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read maps of %d: %w", pid, err)
	}
	return out, nil
}

// readPagemap reads n pagemap entries from page number first.
func readPagemap(pm io.ReaderAt, first, n uint64) ([]uint64, error) {
	buf := make([]byte, n*8)
	if _, err := pm.ReadAt(buf, int64(first*8)); err != nil && err != io.EOF {
		return nil, err
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(buf[i*8:])
	}
	return out, nil
}

// Sizes is the bytes each module takes in the executable at path (its
// symbols in every loaded section) and, by section, what no symbol
// covers: what each dependency costs on disk, and in memory if all of it
// were touched. .bss and .noptrbss take no disk: they are listed apart.
func Sizes(path string) (disk, bss map[string]int64, err error) {
	img, err := openImage(path)
	if err != nil {
		return nil, nil, err
	}
	disk, bss = map[string]int64{}, map[string]int64{}
	lo, hi, ok := img.bssRange()
	for _, s := range img.spans {
		into := disk
		if ok && s.start >= lo && s.end <= hi {
			into = bss
		}
		into[s.module] += int64(s.end - s.start)
	}
	return disk, bss, nil
}
