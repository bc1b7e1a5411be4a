package pageout

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Executable asks the kernel to reclaim the resident pages of the
// executable's read-only mappings (code, read-only data, pc tables). Its
// written data (.data, .bss) and the heap are left alone: those are
// private pages that reclaim would have to swap out.
func Executable() (Result, error) {
	st, err := os.Stat("/proc/self/exe")
	if err != nil {
		return Result{}, fmt.Errorf("page out the executable: %w", err)
	}
	inode := st.Sys().(*syscall.Stat_t).Ino
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return Result{}, fmt.Errorf("page out the executable: %w", err)
	}
	defer f.Close()
	var res Result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.Contains(fields[1], "w") {
			continue
		}
		if ino, _ := strconv.ParseUint(fields[4], 10, 64); ino != inode {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			return res, fmt.Errorf("page out the executable: maps line %q", sc.Text())
		}
		// madvise on the raw range: the mapping is not Go memory, so no
		// slice of it is made.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			return res, fmt.Errorf("page out the executable: madvise %s: %w", fields[0], errno)
		}
		res.Mapped += int64(end - start)
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("page out the executable: read maps: %w", err)
	}
	return res, nil
}
